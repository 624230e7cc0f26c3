# Finds the Debian packages troupe builds on (see scripts/install-deps.sh) and wraps them in targets.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(simdjson 3 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(Catch2 2 CONFIG)

pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

find_path(UTF8PROC_INCLUDE_DIR utf8proc.h REQUIRED)
find_library(UTF8PROC_LIBRARY utf8proc REQUIRED)
add_library(troupe_dep_utf8proc INTERFACE)
target_include_directories(troupe_dep_utf8proc INTERFACE ${UTF8PROC_INCLUDE_DIR})
target_link_libraries(troupe_dep_utf8proc INTERFACE ${UTF8PROC_LIBRARY})

find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)
add_library(troupe_dep_xxhash INTERFACE)
target_include_directories(troupe_dep_xxhash INTERFACE ${XXHASH_INCLUDE_DIR})
target_link_libraries(troupe_dep_xxhash INTERFACE ${XXHASH_LIBRARY})

find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread REQUIRED)
find_library(OPENBLAS_LIBRARY openblas REQUIRED)
add_library(troupe_dep_openblas INTERFACE)
target_include_directories(troupe_dep_openblas INTERFACE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(troupe_dep_openblas INTERFACE ${OPENBLAS_LIBRARY})

find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(troupe_dep_caf INTERFACE)
target_include_directories(troupe_dep_caf INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(troupe_dep_caf INTERFACE ${CAF_CORE_LIBRARY} ${CAF_IO_LIBRARY} Threads::Threads)

find_path(CONCURRENTQUEUE_INCLUDE_DIR concurrentqueue.h
          PATH_SUFFIXES concurrentqueue concurrentqueue/moodycamel REQUIRED)
add_library(troupe_dep_concurrentqueue INTERFACE)
target_include_directories(troupe_dep_concurrentqueue INTERFACE ${CONCURRENTQUEUE_INCLUDE_DIR})
