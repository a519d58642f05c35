#include "tests/postgres_server.h"

#include <glob.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "server/postgres/connection.h"

namespace parc::testing {
namespace {

// The newest installed server's bin directory (/usr/lib/postgresql/15/bin).
std::string FindBin() {
  glob_t g{};
  std::string found;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0 && g.gl_pathc > 0) {
    found = std::filesystem::path(g.gl_pathv[g.gl_pathc - 1]).parent_path();
  }
  globfree(&g);
  return found;
}

absl::Status Run(const std::string& command) {
  int rc = std::system(command.c_str());
  if (rc != 0) return absl::InternalError(absl::StrCat("exit ", rc, ": ", command));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->bin_ = FindBin();
  if (s->bin_.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL is not installed (apt-get install postgresql; tools/deps.sh --test)");
  }
  char tmpl[] = "/tmp/parc-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  s->dir_ = tmpl;
  if (geteuid() == 0) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) return absl::FailedPreconditionError("no user \"postgres\" to run as");
    if (chown(s->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("chown of the PostgreSQL test directory failed");
    }
    s->as_user_ = "runuser -u postgres -- ";
  }
  const std::string data = s->dir_ + "/data";
  PARC_RETURN_IF_ERROR(Run(absl::StrCat(s->as_user_, s->bin_, "/initdb -D ", data,
                                        " -A trust -U postgres -E UTF8 --no-sync", " >", s->dir_,
                                        "/initdb.log 2>&1")));
  PARC_RETURN_IF_ERROR(s->Restart());
  return s;
}

absl::Status PostgresServer::Restart() {
  // Unix socket in the test directory only; no fsync (a test needs no crash safety of its
  // own data, and the suite runs faster).
  return Run(absl::StrCat(as_user_, bin_, "/pg_ctl -D ", dir_, "/data -w -s -l ", dir_,
                          "/server.log -o \"-k ", dir_,
                          " -c listen_addresses='' -c fsync=off -c full_page_writes=off\" start"));
}

PostgresServer& PostgresServer::Shared() {
  // Stopped and removed when the process exits.
  static std::unique_ptr<PostgresServer> shared = [] {
    auto s = Start();
    if (!s.ok()) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << s.status();
      std::abort();
    }
    return *std::move(s);
  }();
  return *shared;
}

PostgresServer::~PostgresServer() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void PostgresServer::Kill() {
  (void)Run(absl::StrCat(as_user_, bin_, "/pg_ctl -D ", dir_, "/data -s -m immediate stop",
                         " >/dev/null 2>&1"));
}

std::string PostgresServer::ConnInfo(const std::string& name) const {
  return absl::StrCat("host=", dir_, " port=5432 user=postgres dbname=", name,
                      " connect_timeout=5");
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  const std::string name = absl::StrCat("t", getpid(), "_", ++databases_);
  auto admin = server::pg::Connection::Open(ConnInfo("postgres"));
  if (!admin.ok()) return admin.status();
  absl::Status created = (*admin)->Run(absl::StrCat("CREATE DATABASE ", name));
  if (!created.ok()) return created;
  return ConnInfo(name);
}

}  // namespace parc::testing
