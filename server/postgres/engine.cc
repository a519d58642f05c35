#include "server/postgres/engine.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "server/postgres/connection.h"
#include "server/postgres/sql_connection.h"

namespace parc::server::pg {
namespace {

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
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<sql::Engine>> OpenEngine(
    const EngineOptions& options, const std::vector<common::Migration>& migrations) {
  PARC_ASSIGN_OR_RETURN(auto writer, pg::Connection::Open(options.conninfo));
  PARC_RETURN_IF_ERROR(Migrate(writer.get(), migrations));
  // Any number of nodes may share the database: what they must agree on goes through it
  // (pg::Coordinator).
  std::vector<std::unique_ptr<sql::Connection>> readers;
  for (int i = 0; i < options.readers; ++i) {
    PARC_ASSIGN_OR_RETURN(auto reader, pg::Connection::Open(options.conninfo));
    readers.push_back(std::make_unique<SqlConnection>(std::move(reader)));
  }
  sql::Engine::Options eopts;
  eopts.max_batch = options.max_batch;
  eopts.max_queued_writes = options.max_queued_writes;
  eopts.begin = "BEGIN";
  auto writing = std::make_unique<SqlConnection>(std::move(writer));
  writing->set_origin(options.origin);
  return std::make_unique<sql::Engine>(eopts, std::move(writing), std::move(readers),
                                       std::make_unique<Reconnect>());
}

}  // namespace parc::server::pg
