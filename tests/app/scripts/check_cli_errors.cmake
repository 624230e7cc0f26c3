# Bad input to `troupe generate` must give one clear error (naming the file or the problem) and a
# non-zero exit, never a crash. Usage: cmake -DTROUPE=... -DMODEL=... -DWORK=... -P check_cli_errors.cmake
function(expect_error what pattern)
  execute_process(COMMAND "${TROUPE}" generate ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err
                  RESULT_VARIABLE rc)
  if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${what}: expected a clean non-zero exit, got '${rc}'\n${out}${err}")
  endif()
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: stderr does not match '${pattern}':\n${err}")
  endif()
  message(STATUS "${what}: ${err}")
endfunction()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

expect_error("missing folder" "config\\.json" --model "${WORK}/nowhere" --prompt hi)

# A model whose weights file is cut short.
file(COPY "${MODEL}/" DESTINATION "${WORK}/truncated")
file(READ "${MODEL}/model.safetensors" head LIMIT 4096 HEX)
string(LENGTH "${head}" hexlen)
file(REMOVE "${WORK}/truncated/model.safetensors")
# Rebuild the first 4096 bytes from hex (a valid header whose data section is missing).
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${head}")
execute_process(COMMAND printf "${escaped}" OUTPUT_FILE "${WORK}/truncated/model.safetensors")
expect_error("truncated weights" "model\\.safetensors" --model "${WORK}/truncated" --prompt hi)

# An architecture troupe does not serve.
file(COPY "${MODEL}/" DESTINATION "${WORK}/gpt2")
file(READ "${MODEL}/config.json" cfg)
string(REPLACE "LlamaForCausalLM" "GPT2LMHeadModel" cfg "${cfg}")
file(WRITE "${WORK}/gpt2/config.json" "${cfg}")
expect_error("unsupported architecture" "GPT2LMHeadModel" --model "${WORK}/gpt2" --prompt hi)

# config.json that is not JSON.
file(COPY "${MODEL}/" DESTINATION "${WORK}/badjson")
file(WRITE "${WORK}/badjson/config.json" "{\"architectures\": [")
expect_error("malformed config.json" "config\\.json" --model "${WORK}/badjson" --prompt hi)

# A prompt longer than the context (512 tokens for the bundled model).
string(REPEAT "Once upon a time " 200 long_prompt)
expect_error("prompt longer than the context" "context" --prompt "${long_prompt}")

# Sampling parameters out of range.
expect_error("negative temperature" "temperature" --prompt hi --temperature -1)
expect_error("top_p of 0" "top_p" --prompt hi --top-p 0)

# Prompt ids that are not ids, or lie outside the vocabulary; no prompt at all.
expect_error("prompt ids not JSON" "JSON array" --prompt-ids "nope")
expect_error("prompt id outside the vocabulary" "outside the vocabulary" --prompt-ids "[1,99999]")
expect_error("no prompt" "--prompt")
