# Tokenizer parity with the official Hugging Face library (npm `tokenizers`), and checks of `troupe tokenize`:
# the parity corpus of tests/tooling/corpus.js through Llama 3, Qwen3, Mistral, stories260k and synthetic variants.
# Fails (never skips) when node or tests/tooling/node_modules is missing: `make deps` installs them.
find_program(TROUPE_NODE node)
if(TROUPE_NODE)
  add_test(NAME engine/tokenizer_parity
           COMMAND ${TROUPE_NODE} ${CMAKE_SOURCE_DIR}/tests/tooling/parity.js
                   --troupe $<TARGET_FILE:troupe> --work ${CMAKE_BINARY_DIR}/tokenizer_parity)
else()
  add_test(NAME engine/tokenizer_parity
           COMMAND sh -c "echo 'FAIL: node is not installed; run make deps' >&2; exit 1")
endif()
set_tests_properties(engine/tokenizer_parity PROPERTIES TIMEOUT 600)

# The tokenize command itself: exact ids on the bundled tokenizer, decoding, and its errors.
add_test(NAME engine/tokenize_cli
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/tooling/cli_errors.sh $<TARGET_FILE:troupe>)
