// A vendor's setup.exe, for the end-to-end test of "exe" packages: appends its arguments, one
// per line, to the file named by /LOG=<path>, and exits with /EXIT=<n> (0 by default).
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const char* log = nullptr;
  int code = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "/LOG=", 5) == 0) log = argv[i] + 5;
    if (std::strncmp(argv[i], "/EXIT=", 6) == 0) code = std::atoi(argv[i] + 6);
  }
  if (log != nullptr) {
    std::FILE* f = std::fopen(log, "a");
    if (f == nullptr) return 2;
    for (int i = 1; i < argc; ++i) std::fprintf(f, "%s\n", argv[i]);
    std::fclose(f);
  }
  return code;
}
