#include "server/postgres/engine.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "server/postgres/connection.h"
#include "server/postgres/sql_connection.h"

namespace parc::server::pg {
namespace {

constexpr int64_t kSingleNodeLock = 7061726301;

class Reconnect final : public sql::Engine::Hooks {
 public:
  void BeforeBatch(sql::Connection* writer) override { Check(writer, "writer"); }
  void BeforeRead(sql::Connection* reader) override { Check(reader, "reader"); }

 private:
  static void Check(sql::Connection* c, const char* what) {
    pg::Connection* db = static_cast<SqlConnection*>(c)->db();
    if (db->connected()) return;
    absl::Status s = db->Reset();
    if (!s.ok()) return;
    spdlog::warn("store: postgresql {} connection re-established ({})", what, db->where());
    if (std::string(what) == "writer") {
      auto locked = db->Exec("SELECT pg_try_advisory_lock($1)", {kSingleNodeLock});
      if (!locked.ok() || locked->Int(0, 0) != 1) {
        spdlog::error(
            "store: another parc-server took this database while the connection "
            "was down: stop one of them");
      }
    }
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<sql::Engine>> OpenEngine(
    const EngineOptions& options, const std::vector<common::Migration>& migrations) {
  PARC_ASSIGN_OR_RETURN(auto writer, pg::Connection::Open(options.conninfo));
  PARC_RETURN_IF_ERROR(Migrate(writer.get(), migrations));
  // One node per database for now: check-in caches, dashboard sessions and rollout
  // evaluation are still per process (docs/design.md, "PostgreSQL"). The lock goes with the
  // writer's session, so a node that dies frees it.
  PARC_ASSIGN_OR_RETURN(Result locked,
                        writer->Exec("SELECT pg_try_advisory_lock($1)", {kSingleNodeLock}));
  if (locked.Int(0, 0) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("another parc-server already runs on ", writer->where(),
                     ": one server per PostgreSQL database (several nodes on one database are not "
                     "supported yet)"));
  }
  std::vector<std::unique_ptr<sql::Connection>> readers;
  for (int i = 0; i < options.readers; ++i) {
    PARC_ASSIGN_OR_RETURN(auto reader, pg::Connection::Open(options.conninfo));
    readers.push_back(std::make_unique<SqlConnection>(std::move(reader)));
  }
  sql::Engine::Options eopts;
  eopts.max_batch = options.max_batch;
  eopts.max_queued_writes = options.max_queued_writes;
  eopts.begin = "BEGIN";
  return std::make_unique<sql::Engine>(eopts, std::make_unique<SqlConnection>(std::move(writer)),
                                       std::move(readers), std::make_unique<Reconnect>());
}

}  // namespace parc::server::pg
