// cuBLAS and cuBLASLt loaded at run time (dlopen): each library and its entry points, found once per process.
#include "kernels/cuda/cublas_loader.hpp"

#include <dlfcn.h>

#include <initializer_list>
#include <string>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

template <class Api>
struct loaded {
  Api api;
  std::string error;
};

// Opens the first library of `names` that loads; "" or the reason it failed.
void* open_first(std::initializer_list<const char*> names, const char* label, std::string& error) {
  void* lib = nullptr;
  for (const char* name : names)
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) return lib;
  const char* e = dlerror();
  error = std::string("cannot load ") + label + " (" + *names.begin() + "): " + (e != nullptr ? e : "not found");
  return nullptr;
}

// A finder of symbols in lib that records the first missing one in error.
auto finder(void* lib, const char* label, std::string& error) {
  return [lib, label, &error](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
    if (fn == nullptr && error.empty()) error = std::string(label) + " lacks " + symbol;
  };
}

loaded<cublas_api> load_blas() {
  loaded<cublas_api> l;
  void* lib = open_first({"libcublas.so.13", "libcublas.so"}, "cuBLAS", l.error);
  if (lib == nullptr) return l;
  auto find = finder(lib, "cuBLAS", l.error);
  find(l.api.create, "cublasCreate_v2");
  find(l.api.destroy, "cublasDestroy_v2");
  find(l.api.set_stream, "cublasSetStream_v2");
  find(l.api.set_workspace, "cublasSetWorkspace_v2");
  find(l.api.gemm_ex, "cublasGemmEx");
  return l;
}

loaded<cublaslt_api> load_lt() {
  loaded<cublaslt_api> l;
  void* lib = open_first({"libcublasLt.so.13", "libcublasLt.so"}, "cuBLASLt", l.error);
  if (lib == nullptr) return l;
  auto find = finder(lib, "cuBLASLt", l.error);
  find(l.api.create, "cublasLtCreate");
  find(l.api.destroy, "cublasLtDestroy");
  find(l.api.desc_create, "cublasLtMatmulDescCreate");
  find(l.api.desc_destroy, "cublasLtMatmulDescDestroy");
  find(l.api.desc_set, "cublasLtMatmulDescSetAttribute");
  find(l.api.layout_create, "cublasLtMatrixLayoutCreate");
  find(l.api.layout_destroy, "cublasLtMatrixLayoutDestroy");
  find(l.api.pref_create, "cublasLtMatmulPreferenceCreate");
  find(l.api.pref_destroy, "cublasLtMatmulPreferenceDestroy");
  find(l.api.pref_set, "cublasLtMatmulPreferenceSetAttribute");
  find(l.api.heuristic, "cublasLtMatmulAlgoGetHeuristic");
  find(l.api.check, "cublasLtMatmulAlgoCheck");
  find(l.api.matmul, "cublasLtMatmul");
  return l;
}

template <class Api>
const Api* result(const loaded<Api>& l, std::string* why) {
  if (!l.error.empty()) {
    if (why) *why = l.error;
    return nullptr;
  }
  return &l.api;
}

}  // namespace

const cublas_api* load_cublas(std::string* why) {
  static const loaded<cublas_api> l = load_blas();  // thread-safe once
  return result(l, why);
}

const cublaslt_api* load_cublaslt(std::string* why) {
  static const loaded<cublaslt_api> l = load_lt();
  return result(l, why);
}

}  // namespace troupe::kernels::cuda
