# End-to-end tests of the troupe program: parity with transformers through the CLI, and clean errors.
add_test(NAME app/generate_matches_transformers
         COMMAND ${CMAKE_COMMAND} -DTROUPE=$<TARGET_FILE:troupe>
                 -DGOLDEN=${TROUPE_SHARED_DIR}/golden/stories260k_hf.json
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/app/scripts/check_generate_golden.cmake)
add_test(NAME app/generate_bad_input_errors
         COMMAND ${CMAKE_COMMAND} -DTROUPE=$<TARGET_FILE:troupe> -DMODEL=${TROUPE_DEFAULT_MODEL}
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_errors
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/app/scripts/check_cli_errors.cmake)
add_test(NAME app/generate_prompts_file
         COMMAND ${CMAKE_COMMAND} -DTROUPE=$<TARGET_FILE:troupe>
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/prompts_file
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/app/scripts/check_prompts_file.cmake)
