// parc-agent.exe: the Parc device agent on Windows.
#include <windows.h>
// windows.h first.
#include <shellapi.h>

#include <iostream>
#include <string>
#include <vector>

#include "agent/windows/platform.h"
#include "common/windows_util.h"

int main() {
  // The arguments as UTF-16 from Windows, in UTF-8 for the agent (a path may hold "é").
  int argc = 0;
  wchar_t** wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(parc::common::Narrow(wargv[i]));
  LocalFree(wargv);
  return parc::agent::WindowsAgentMain(args, std::cout, std::cerr);
}
