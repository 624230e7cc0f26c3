# End-to-end tests of `troupe serve` with Node scripts (tests/tooling/openai_*.js) on 127.0.0.1:
# the official openai npm client against engine::llm's outputs, and the bounded load tests
# (cancellation, backpressure, 1,000 held streams, draining on SIGTERM). Fail (never skip) without node or the npm tooling.
find_program(TROUPE_NODE node)
set(TROUPE_TOOLING ${CMAKE_SOURCE_DIR}/tests/tooling)
if(TROUPE_NODE)
  add_test(NAME net/openai_client
           COMMAND ${TROUPE_NODE} ${TROUPE_TOOLING}/openai_client.js --troupe $<TARGET_FILE:troupe>
                   --model ${TROUPE_DEFAULT_MODEL} --work ${CMAKE_BINARY_DIR}/openai_client)
  foreach(part cancel backpressure streams drain)
    add_test(NAME net/openai_load_${part}
             COMMAND ${TROUPE_NODE} ${TROUPE_TOOLING}/openai_load.js --troupe $<TARGET_FILE:troupe>
                     --model ${TROUPE_DEFAULT_MODEL} --only ${part})
  endforeach()
else()
  foreach(name openai_client openai_load_cancel openai_load_backpressure openai_load_streams
               openai_load_drain)
    add_test(NAME net/${name} COMMAND sh -c "echo 'FAIL: node is not installed; run make deps' >&2; exit 1")
  endforeach()
endif()
set_tests_properties(net/openai_client net/openai_load_cancel net/openai_load_backpressure net/openai_load_drain
                     PROPERTIES TIMEOUT 300)
# Load tests start servers with thousands of threads and connections: not beside each other.
set_tests_properties(net/openai_load_cancel net/openai_load_backpressure net/openai_load_streams
                     net/openai_load_drain
                     PROPERTIES RUN_SERIAL TRUE)
set_tests_properties(net/openai_load_streams PROPERTIES TIMEOUT 600)
