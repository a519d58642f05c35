#include "server/postgres/sql_connection.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace parc::server::pg {

std::string NumberedParameters(absl::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int highest = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      out.push_back(c);
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
      continue;
    }
    if (c != '?') {
      out.push_back(c);
      continue;
    }
    size_t j = i + 1;
    while (j < sql.size() && absl::ascii_isdigit(static_cast<unsigned char>(sql[j]))) ++j;
    int n = 0;
    if (j > i + 1) {
      n = std::stoi(std::string(sql.substr(i + 1, j - i - 1)));
    } else {
      n = highest + 1;  // a bare ? numbers after the highest so far, as in SQLite
    }
    highest = std::max(highest, n);
    absl::StrAppend(&out, "$", n);
    i = j - 1;
  }
  if (count != nullptr) *count = highest;
  return out;
}

class SqlConnection::PgStatement final : public sql::Statement {
 public:
  PgStatement(SqlConnection* conn, absl::string_view sql) : conn_(conn) {
    int count = 0;
    sql_ = NumberedParameters(sql, &count);
    params_count_ = static_cast<size_t>(count);
    params_.resize(params_count_, Param(std::nullopt));
  }

  void BindInt(int i, int64_t v) override { Set(i, Param(v)); }
  void BindText(int i, absl::string_view v) override { Set(i, Param(v)); }
  void BindBlob(int i, absl::string_view v) override { Set(i, Param::Bytes(std::string(v))); }
  void BindNull(int i) override { Set(i, Param(std::nullopt)); }
  absl::StatusOr<bool> Step() override {
    if (!result_.has_value()) {
      auto r = conn_->db_->Exec(sql_, params_);
      if (!r.ok()) return r.status();
      result_ = std::move(*r);
      conn_->changes_ = result_->affected();
      row_ = -1;
    }
    ++row_;
    return row_ < result_->rows();
  }
  int64_t Int(int col) const override { return IsNull(col) ? 0 : result_->Int(row_, col); }
  double Double(int col) const override { return IsNull(col) ? 0 : result_->Double(row_, col); }
  std::string Text(int col) const override {
    return IsNull(col) ? std::string() : result_->Text(row_, col);
  }
  std::string Blob(int col) const override {
    return IsNull(col) ? std::string() : result_->Bytes(row_, col);
  }
  bool IsNull(int col) const override { return result_->IsNull(row_, col); }
  void Reset() override {
    params_.assign(params_count_, Param(std::nullopt));
    result_.reset();
  }

 private:
  void Set(int i, Param p) {
    result_.reset();  // binding after a step starts over
    if (params_.size() < static_cast<size_t>(i)) {
      params_.resize(static_cast<size_t>(i), Param(std::nullopt));
    }
    params_[static_cast<size_t>(i - 1)] = std::move(p);
  }

  SqlConnection* conn_;
  std::string sql_;
  size_t params_count_ = 0;
  // Unbound parameters are NULL, as in SQLite.
  std::vector<Param> params_;
  std::optional<Result> result_;
  int row_ = -1;
};

SqlConnection::SqlConnection(std::unique_ptr<pg::Connection> db) : db_(std::move(db)) {}

SqlConnection::~SqlConnection() { cache_.clear(); }

absl::StatusOr<sql::Stmt> SqlConnection::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(std::string(sql), std::make_unique<PgStatement>(this, sql)).first;
  }
  return sql::Stmt(it->second.get());
}

void SqlConnection::Notify(absl::string_view channel, absl::string_view message) {
  notifications_.emplace(std::string(channel), absl::StrCat(origin_, " ", message));
}

absl::Status SqlConnection::FlushNotifications() {
  if (notifications_.empty()) return absl::OkStatus();
  std::vector<std::string> channels, messages;
  for (const auto& [c, m] : notifications_) {
    channels.push_back(c);
    messages.push_back(m);
  }
  notifications_.clear();
  return db_
      ->Exec(
          "SELECT count(pg_notify(c, m)) FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS TEXT[])) "
          "AS n(c, m)",
          {ArrayParam(channels), ArrayParam(messages)})
      .status();
}

std::string SqlConnection::InList(absl::string_view expr, int param) const {
  return absl::StrCat(expr, " = ANY(CAST(?", param, " AS TEXT[]))");
}

std::string SqlConnection::ListParam(const std::set<std::string>& values) const {
  return ArrayParam(std::vector<std::string>(values.begin(), values.end()));
}

std::string SqlConnection::ArrayParam(const std::vector<std::string>& values) const {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace parc::server::pg
