#include "agent/windows/service.h"

#include <windows.h>
// windows.h first.
#include <aclapi.h>
#include <sddl.h>
#include <shlobj.h>

#include <algorithm>
#include <atomic>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/core/cli.h"
#include "agent/core/enrollment.h"
#include "agent/windows/platform.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/windows_util.h"
#include "spdlog/sinks/rotating_file_sink.h"

namespace parc::agent {
namespace {

SERVICE_STATUS_HANDLE g_status_handle = nullptr;
std::atomic<asio::io_context*> g_io{nullptr};
std::function<void()>* g_on_stop = nullptr;
std::function<void()>* g_on_trigger = nullptr;
std::string g_program;
int g_exit_status = 0;

void ReportStatus(DWORD state, DWORD exit_code = NO_ERROR, DWORD wait_hint = 0) {
  SERVICE_STATUS status{};
  status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  status.dwCurrentState = state;
  status.dwControlsAccepted =
      state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
  status.dwWin32ExitCode = exit_code;
  status.dwWaitHint = wait_hint;
  SetServiceStatus(g_status_handle, &status);
}

DWORD WINAPI OnControl(DWORD control, DWORD, LPVOID, LPVOID) {
  asio::io_context* io = g_io.load();
  switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
      ReportStatus(SERVICE_STOP_PENDING, NO_ERROR, 30000);
      if (io != nullptr && g_on_stop != nullptr) asio::post(*io, *g_on_stop);
      return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
      return NO_ERROR;
    default:
      if (control == kServiceControlCycleNow && io != nullptr && g_on_trigger != nullptr) {
        asio::post(*io, *g_on_trigger);
        return NO_ERROR;
      }
      return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

void WINAPI ServiceMain(DWORD, LPWSTR*) {
  g_status_handle = RegisterServiceCtrlHandlerExW(kServiceName, OnControl, nullptr);
  if (g_status_handle == nullptr) return;
  ReportStatus(SERVICE_RUNNING);
  spdlog::info("ParcAgent service started");
  std::ostringstream out, err;
  g_exit_status = AgentMain(
      {g_program, "run"}, out, err,
      [](const AgentConfig& config) {
        auto platform = MakeWindowsPlatform(config);
        platform->host = std::make_unique<ScmServiceHost>();
        return platform;
      },
      /*supervise=*/false);
  if (!err.str().empty()) spdlog::error("{}", err.str());
  spdlog::info("ParcAgent service stopped (exit status {})", g_exit_status);
  spdlog::default_logger()->flush();
  ReportStatus(SERVICE_STOPPED, g_exit_status == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR);
}

bool SafeTomlString(absl::string_view s) {
  return s.find_first_of("'\r\n") == absl::string_view::npos;
}

}  // namespace

void ScmServiceHost::Watch(asio::io_context& io, std::function<void()> on_stop,
                           std::function<void()> on_trigger) {
  g_on_stop = new std::function<void()>(std::move(on_stop));
  g_on_trigger = new std::function<void()>(std::move(on_trigger));
  g_io = &io;
}

void ScmServiceHost::Unwatch() { g_io = nullptr; }

std::string ParcDataDir() {
  wchar_t* path = nullptr;
  std::string dir = "C:\\ProgramData";
  if (SUCCEEDED(SHGetKnownFolderPath(FOLDERID_ProgramData, 0, nullptr, &path))) {
    dir = common::Narrow(path);
  }
  CoTaskMemFree(path);
  return dir + "\\Parc";
}

int RunAsService(const std::string& program) {
  g_program = program;
  const std::string logs = ParcDataDir() + "\\logs";
  if (common::MakeDirs(logs).ok()) {
    try {
      auto logger = spdlog::rotating_logger_mt("parc-agent", logs + "\\agent.log", 5 << 20, 3);
      logger->flush_on(spdlog::level::info);
      spdlog::set_default_logger(logger);
    } catch (const spdlog::spdlog_ex&) {
      // Keep the default logger: the service still runs.
    }
  }
  SERVICE_TABLE_ENTRYW table[] = {{const_cast<wchar_t*>(kServiceName), ServiceMain},
                                  {nullptr, nullptr}};
  if (!StartServiceCtrlDispatcherW(table)) {
    std::fprintf(stderr,
                 "parc-agent: `service` is for the Service Control Manager (%s); from a console "
                 "use `parc-agent run`\n",
                 common::WindowsErrorText(GetLastError()).c_str());
    return 2;
  }
  return g_exit_status;
}

absl::Status RestrictToAdministrators(const std::string& path) {
  // Protected (no inheritance from ProgramData, where Users may read), full control for
  // SYSTEM and Administrators, inherited by files and subdirectories.
  PSECURITY_DESCRIPTOR sd = nullptr;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)",
                                                            SDDL_REVISION_1, &sd, nullptr)) {
    return common::WindowsErrorStatus("cannot build the ACL for", path, GetLastError());
  }
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = nullptr;
  GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted);
  std::wstring wpath = common::Widen(path);
  DWORD rc = SetNamedSecurityInfoW(wpath.data(), SE_FILE_OBJECT,
                                   DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                   nullptr, nullptr, dacl, nullptr);
  LocalFree(sd);
  if (rc != ERROR_SUCCESS) return common::WindowsErrorStatus("cannot set the ACL of", path, rc);
  return absl::OkStatus();
}

void SetRestartOnFailure() {
  SC_HANDLE scm = OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT);
  if (scm == nullptr) return;
  SC_HANDLE service = OpenServiceW(scm, kServiceName, SERVICE_CHANGE_CONFIG | SERVICE_START);
  if (service != nullptr) {
    // Restarted 1 minute after a failure, three times; the count resets after a day.
    SC_ACTION actions[3] = {
        {SC_ACTION_RESTART, 60000}, {SC_ACTION_RESTART, 60000}, {SC_ACTION_RESTART, 60000}};
    SERVICE_FAILURE_ACTIONSW failure{};
    failure.dwResetPeriod = 86400;
    failure.cActions = 3;
    failure.lpsaActions = actions;
    ChangeServiceConfig2W(service, SERVICE_CONFIG_FAILURE_ACTIONS, &failure);
    CloseServiceHandle(service);
  }
  CloseServiceHandle(scm);
}

absl::Status ConfigureMachine(const MachineSetup& given, const std::string& parc_dir) {
  // The MSI passes every property, empty when not set.
  MachineSetup setup = given;
  setup.publisher_key_files.erase(
      std::remove(setup.publisher_key_files.begin(), setup.publisher_key_files.end(), ""),
      setup.publisher_key_files.end());
  SetRestartOnFailure();
  const std::string config_path = parc_dir + "\\agent.toml";
  const bool nothing_given = setup.server.empty() && setup.token.empty() && setup.ca_file.empty() &&
                             setup.publisher_key_files.empty();
  if (nothing_given && common::PathExists(config_path)) return absl::OkStatus();  // upgrade
  if (setup.server.empty() || setup.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "PARC_SERVER (https://HOST:PORT) and PARC_CA (the CA certificate's file) are required");
  }
  if (!absl::StartsWith(setup.server, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PARC_SERVER \"", setup.server, "\": give the server's HTTPS address, https://HOST:PORT"));
  }
  for (const std::string* s : {&setup.server, &setup.token}) {
    if (!SafeTomlString(*s)) {
      return absl::InvalidArgumentError("PARC_SERVER and PARC_TOKEN hold no quote or line break");
    }
  }
  if (auto s = common::MakeDirs(parc_dir + "\\keys"); !s.ok()) return s;
  if (auto s = RestrictToAdministrators(parc_dir); !s.ok()) return s;
  auto ca = common::ReadFile(setup.ca_file, 1 << 20);
  if (!ca.ok())
    return absl::Status(ca.status().code(), absl::StrCat("PARC_CA: ", ca.status().message()));
  if (!absl::StrContains(*ca, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat("PARC_CA: ", setup.ca_file, " holds no PEM certificate"));
  }
  const std::string ca_path = parc_dir + "\\ca.pem";
  if (auto s = common::WriteFileAtomic(ca_path, *ca); !s.ok()) return s;
  std::vector<std::string> keys;
  for (const std::string& file : setup.publisher_key_files) {
    auto pem = common::ReadFile(file, 1 << 16);
    if (!pem.ok()) {
      return absl::Status(pem.status().code(),
                          absl::StrCat("PARC_PUBLISHER_KEY: ", pem.status().message()));
    }
    std::string name = file.substr(file.find_last_of("/\\") + 1);
    const std::string key_path = parc_dir + "\\keys\\" + name;
    if (auto s = common::WriteFileAtomic(key_path, *pem); !s.ok()) return s;
    keys.push_back(absl::StrCat("'", key_path, "'"));
  }
  // TOML literal strings ('...'): Windows paths keep their backslashes.
  std::string toml = absl::StrCat(
      "# Written by the Parc agent's installer (parc-agent configure).\n", "server = '",
      setup.server, "'\n", "ca = '", ca_path, "'\n", "state_dir = '", parc_dir, "\\state'\n");
  if (!setup.token.empty()) absl::StrAppend(&toml, "enrollment_token = '", setup.token, "'\n");
  if (!keys.empty()) absl::StrAppend(&toml, "publisher_keys = [", absl::StrJoin(keys, ", "), "]\n");
  if (setup.image) {
    const std::string fingerprint = Fingerprint(WindowsInventorySource().CollectIdentity());
    absl::StrAppend(&toml, "image_fingerprint = '", fingerprint, "'\n");
  }
  return common::WriteFileAtomic(config_path, toml, 0600);
}

}  // namespace parc::agent
