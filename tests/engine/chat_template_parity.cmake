# Chat-template parity with @huggingface/jinja (npm): tests/tooling/chat_render.js renders real chat
# templates over many conversations, then scripts/chat_parity_check compares troupe's output.
# Fails (never skips) when node or tests/tooling/node_modules is missing: `make deps` installs them.
add_executable(chat_parity_check ${CMAKE_CURRENT_LIST_DIR}/scripts/chat_parity_check.cpp)
target_link_libraries(chat_parity_check PRIVATE troupe_engine)
find_program(TROUPE_NODE node)
if(TROUPE_NODE)
  add_test(NAME engine/chat_template_parity
           COMMAND ${TROUPE_NODE} ${CMAKE_SOURCE_DIR}/tests/tooling/chat_render.js
                   --work ${CMAKE_BINARY_DIR}/chat_template_parity --check $<TARGET_FILE:chat_parity_check>)
else()
  add_test(NAME engine/chat_template_parity
           COMMAND sh -c "echo 'FAIL: node is not installed; run make deps' >&2; exit 1")
endif()
set_tests_properties(engine/chat_template_parity PROPERTIES TIMEOUT 300)

# The same cases (and Python-only snippets) against Python's Jinja2, the renderer transformers uses,
# where python3 can import jinja2; the npm test above is the one that always runs.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(TROUPE_NODE AND Python3_Interpreter_FOUND)
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import jinja2" RESULT_VARIABLE troupe_no_jinja2
                  OUTPUT_QUIET ERROR_QUIET)
  if(troupe_no_jinja2 EQUAL 0)
    add_test(NAME engine/chat_template_python_parity
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/scripts/chat_python_parity.sh ${TROUPE_NODE} ${CMAKE_SOURCE_DIR}
                     ${CMAKE_BINARY_DIR}/chat_template_python_parity $<TARGET_FILE:chat_parity_check>)
    set_tests_properties(engine/chat_template_python_parity PROPERTIES TIMEOUT 300)
  else()
    message(STATUS "troupe: python3 has no jinja2; the chat-template test against Python's Jinja2 is not added")
  endif()
endif()
