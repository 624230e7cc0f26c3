// cuBLAS loaded at run time (dlopen): the library and its entry points, found once per process.
#include "kernels/cuda/cublas_loader.hpp"

#include <dlfcn.h>

#include <string>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

struct loaded {
  cublas_api api;
  std::string error;
};

loaded load() {
  loaded l;
  void* lib = nullptr;
  for (const char* name : {"libcublas.so.13", "libcublas.so"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
  if (lib == nullptr) {
    const char* e = dlerror();
    l.error = std::string("cannot load cuBLAS (libcublas.so.13): ") + (e != nullptr ? e : "not found");
    return l;
  }
  auto find = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
    if (fn == nullptr && l.error.empty()) l.error = std::string("cuBLAS lacks ") + symbol;
  };
  find(l.api.create, "cublasCreate_v2");
  find(l.api.destroy, "cublasDestroy_v2");
  find(l.api.set_stream, "cublasSetStream_v2");
  find(l.api.set_workspace, "cublasSetWorkspace_v2");
  find(l.api.gemm_ex, "cublasGemmEx");
  return l;
}

}  // namespace

const cublas_api* load_cublas(std::string* why) {
  static const loaded l = load();  // thread-safe once
  if (!l.error.empty()) {
    if (why) *why = l.error;
    return nullptr;
  }
  return &l.api;
}

}  // namespace troupe::kernels::cuda
