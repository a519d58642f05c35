#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/scope.h"

// The SQL the store's aggregates speak, whatever engine runs it. The store's queries are
// written once, with ?1, ?2… (or ?) parameters, in the SQL that SQLite 3.40 and PostgreSQL 15
// agree on (RETURNING, ON CONFLICT … DO UPDATE, FILTER, CASE instead of boolean sums, CAST for
// parameters whose type the context does not say). Where the engines differ, the connection
// says how (InList, ListParam; see scope_sql.h). Engines: server/sqlite/connection.h,
// server/postgres/store_connection.h.
namespace parc::server::sql {

// A prepared statement, owned and cached by its connection.
class Statement {
 public:
  virtual ~Statement() = default;
  // Binding after Step/Run starts the statement over, so one statement can be bound and run
  // repeatedly in a loop.
  virtual void BindInt(int i, int64_t v) = 0;
  virtual void BindText(int i, absl::string_view v) = 0;
  virtual void BindBlob(int i, absl::string_view v) = 0;
  virtual void BindNull(int i) = 0;
  // Advances; true when a row is available, false when done.
  [[nodiscard]] virtual absl::StatusOr<bool> Step() = 0;
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual std::string Blob(int col) const = 0;
  virtual bool IsNull(int col) const = 0;
  // Back to before the first Step, parameters unbound.
  virtual void Reset() = 0;
};

// A statement borrowed from its connection's cache; reset when the handle goes.
class Stmt {
 public:
  explicit Stmt(Statement* s) : s_(s) {}
  Stmt(Stmt&& other) noexcept : s_(other.s_) { other.s_ = nullptr; }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (s_ != nullptr) s_->Reset();
  }

  Stmt& Bind(int i, int64_t v) {
    s_->BindInt(i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, uint32_t v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, bool v) { return Bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& Bind(int i, absl::string_view v) {
    s_->BindText(i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, absl::string_view(v)); }
  Stmt& Bind(int i, const char* v) { return Bind(i, absl::string_view(v)); }
  Stmt& Bind(int i, std::nullopt_t) {
    s_->BindNull(i);
    return *this;
  }
  template <typename T>
  Stmt& Bind(int i, const std::optional<T>& v) {
    return v.has_value() ? Bind(i, *v) : Bind(i, std::nullopt);
  }
  Stmt& BindBlob(int i, absl::string_view v) {
    s_->BindBlob(i, v);
    return *this;
  }
  // Binds all parameters in order, starting at 1.
  template <typename... Args>
  Stmt& BindAll(const Args&... args) {
    int i = 0;
    (Bind(++i, args), ...);
    return *this;
  }

  [[nodiscard]] absl::StatusOr<bool> Step() { return s_->Step(); }
  // Steps until done (for statements without results).
  [[nodiscard]] absl::Status Run() {
    while (true) {
      absl::StatusOr<bool> row = s_->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
    }
  }
  int64_t Int(int col) const { return s_->Int(col); }
  double Double(int col) const { return s_->Double(col); }
  std::string Text(int col) const { return s_->Text(col); }
  std::string Blob(int col) const { return s_->Blob(col); }
  bool IsNull(int col) const { return s_->IsNull(col); }

 private:
  Statement* s_;
};

// One connection of an engine. Not thread-safe: each thread uses its own.
class Connection {
 public:
  virtual ~Connection() = default;
  // A cached prepared statement for sql.
  [[nodiscard]] virtual absl::StatusOr<Stmt> Prepare(absl::string_view sql) = 0;
  // Runs SQL without parameters or results (BEGIN, SAVEPOINT…).
  [[nodiscard]] virtual absl::Status Exec(absl::string_view sql) = 0;
  // Exec for a fixed statement run again and again (the writer's savepoint around every
  // write): an engine may keep it prepared (SQLite does; compiling it is most of its cost).
  [[nodiscard]] virtual absl::Status ExecRepeated(absl::string_view sql) { return Exec(sql); }
  // Rows changed by the last INSERT, UPDATE or DELETE run to its end.
  virtual int64_t Changes() const = 0;
  // Where the engines differ: the condition "expr is one of the values of parameter ?param",
  // and that parameter's value for a list (see scope_sql.h).
  virtual std::string InList(absl::string_view expr, int param) const = 0;
  virtual std::string ListParam(const std::set<std::string>& values) const = 0;
  // Whether a parameter may be an array (PostgreSQL: CAST(?N AS TEXT[]) bound to
  // ArrayParam(values)): a batch of rows then goes in one statement, one round trip, instead of
  // one statement per row (which costs nothing more in SQLite, in process).
  virtual bool has_arrays() const { return false; }
  // Whether a row updated to a larger size stays in its page, the page split and its
  // neighbours rebalanced when it no longer fits (SQLite's B-tree), rather than written anew
  // as a new version (PostgreSQL, whose tables keep room in their pages with fillfactor).
  // Rows that will grow are then better born with room (kDeviceRowRoom).
  virtual bool grows_rows_in_place() const { return false; }
  // True where write transactions run one at a time (SQLite's single writer): what a write
  // transaction read stays true until it commits, and the connection knows the id its last
  // INSERT gave (LastInsertId). Hot writes then do without RETURNING, which SQLite (3.40)
  // serves through a temporary table built and dropped at each statement. Where writers run
  // side by side (PostgreSQL, several nodes), a row read may change before it is updated:
  // the update returns what it left.
  virtual bool serializes_writes() const { return false; }
  // Whether every table row has an integer id besides its key (SQLite's rowid), by which a
  // statement finds the row in one B-tree search instead of two (the key's index, then the
  // table) when it knows it.
  virtual bool has_rowids() const { return false; }
  // With serializes_writes(): the id (rowid) of the row the connection's last INSERT added.
  virtual int64_t LastInsertId() const { return 0; }
  virtual std::string ArrayParam(const std::vector<std::string>& values) const {
    (void)values;
    return "";
  }
  // Tells every server node on this database, once the current transaction commits, that
  // message happened on channel (PostgreSQL's NOTIFY; the engine sends what a batch gathered
  // in FlushNotifications, just before its COMMIT). Nothing where one process is the only
  // one (SQLite).
  virtual void Notify(absl::string_view channel, absl::string_view message) {
    (void)channel;
    (void)message;
  }
  [[nodiscard]] virtual absl::Status FlushNotifications() { return absl::OkStatus(); }
  virtual void DropNotifications() {}
  // The writer's transaction, as the engine runs it (sql::Engine::WriterLoop), for what a
  // connection keeps beside the database until COMMIT (SQLite: the health counts in memory,
  // health_counts.h): a write's savepoint taken, that write undone (ROLLBACK TO its
  // savepoint), the transaction committed, the transaction rolled back.
  virtual void WriteStarted() {}
  virtual void WriteUndone() {}
  virtual void Committed() {}
  virtual void RolledBack() {}
  // Where this connection's process is the only writer of its database (SQLite): the software
  // sets (by hash) its committed transactions found or stored, so that an inventory referring
  // to one needs no lookup. A write notes the sets it found or stored (SoftwareSetFound),
  // kept once its transaction commits; the purge, which alone deletes sets, forgets them all
  // (ForgetSoftwareSets) before it deletes any. Elsewhere (PostgreSQL, where other nodes
  // delete), nothing is kept and every set is looked up.
  virtual bool SoftwareSetKnown(const std::string& hash) const {
    (void)hash;
    return false;
  }
  virtual void SoftwareSetFound(const std::string& hash) { (void)hash; }
  virtual void ForgetSoftwareSets() {}
};

// Steps through every row of st, calling read(st) for each; returns what read returned, in
// row order. The one loop over rows the store uses.
template <typename Read>
[[nodiscard]] auto CollectRows(Stmt& st, Read read)
    -> absl::StatusOr<std::vector<decltype(read(st))>> {
  std::vector<decltype(read(st))> out;
  while (true) {
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out.push_back(read(st));
  }
}

// Steps through every row of st, calling visit(st) for each; stops at the first error visit
// returns (absl::Status) or at the end.
template <typename Visit>
[[nodiscard]] absl::Status ForEachRow(Stmt& st, Visit visit) {
  while (true) {
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    if constexpr (std::is_same_v<decltype(visit(st)), void>) {
      visit(st);
    } else {
      absl::Status status = visit(st);
      if (!status.ok()) return status;
    }
  }
}

}  // namespace parc::server::sql
