// Internal to engine/chat: CHAT_TRY, which unwraps an expected<T> or returns its error.
#pragma once

#include <utility>

/// Evaluates an expected<T>: returns its error from the enclosing function, else binds the value to
/// `var`.
#define CHAT_TRY(var, expr)              \
  auto var##_r = (expr);                 \
  if (!var##_r) return var##_r.error();  \
  auto var = std::move(*var##_r)
