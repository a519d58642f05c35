# All dependencies come from Debian 12 packages (tools/deps.sh installs them).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(LibArchive REQUIRED)
find_package(ZLIB REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_path(TOMLPP_INCLUDE_DIR toml++/toml.h REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
# parc-server's allocator (docs/performance.md: the server's own allocations cost a quarter
# less CPU than with glibc's malloc); sanitizer builds keep theirs.
pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)

# Header-only libraries shipped by Debian without CMake packages.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(parc_asio INTERFACE)
target_include_directories(parc_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(parc_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(parc_asio INTERFACE Threads::Threads)

find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
add_library(parc_cli11 INTERFACE)
target_include_directories(parc_cli11 SYSTEM INTERFACE ${CLI11_INCLUDE_DIR})
