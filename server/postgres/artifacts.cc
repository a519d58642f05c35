#include "server/postgres/artifacts.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "server/postgres/connection.h"

namespace parc::server::pg {

absl::StatusOr<bool> Artifacts::Has(const std::string& sha256) {
  PARC_ASSIGN_OR_RETURN(auto db, Connection::Open(conninfo_));
  PARC_ASSIGN_OR_RETURN(Result r, db->Exec("SELECT 1 FROM artifacts WHERE sha256 = $1", {sha256}));
  return r.rows() > 0;
}

absl::Status Artifacts::Put(const std::string& sha256, const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return common::ErrnoStatus("cannot open", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  PARC_ASSIGN_OR_RETURN(auto db, Connection::Open(conninfo_));
  PARC_RETURN_IF_ERROR(db->Run("BEGIN"));
  auto fail = [&](absl::Status s) {
    (void)db->Run("ROLLBACK");
    return s;
  };
  // Another node may be storing the same artifact: the second one waits here, then finds it.
  auto locked = db->Exec("SELECT pg_advisory_xact_lock(hashtext($1))", {sha256});
  if (!locked.ok()) return fail(locked.status());
  auto done = db->Exec("SELECT 1 FROM artifacts WHERE sha256 = $1", {sha256});
  if (!done.ok()) return fail(done.status());
  if (done->rows() > 0) return fail(absl::OkStatus());
  auto cleared = db->Exec("DELETE FROM artifact_chunks WHERE sha256 = $1", {sha256});
  if (!cleared.ok()) return fail(cleared.status());
  std::string chunk(kChunkBytes, '\0');
  uint64_t stored = 0;
  for (int seq = 0; stored < size; ++seq) {
    size_t filled = 0;
    while (filled < chunk.size() && stored + filled < size) {
      ssize_t n = ::read(fd, chunk.data() + filled, chunk.size() - filled);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(common::ErrnoStatus("cannot read", path, errno));
      if (n == 0) break;
      filled += static_cast<size_t>(n);
    }
    if (filled == 0) {
      return fail(absl::DataLossError(absl::StrCat(path, ": shorter than ", size, " bytes")));
    }
    auto ins = db->Exec("INSERT INTO artifact_chunks(sha256, seq, data) VALUES ($1, $2, $3)",
                        {sha256, seq, Param::Bytes(chunk.substr(0, filled))});
    if (!ins.ok()) return fail(ins.status());
    stored += filled;
  }
  auto row = db->Exec(
      "INSERT INTO artifacts(sha256, size, stored_at) VALUES ($1, $2, "
      "CAST(extract(epoch FROM now()) AS BIGINT))",
      {sha256, size});
  if (!row.ok()) return fail(row.status());
  return db->Run("COMMIT");
}

absl::Status Artifacts::Get(const std::string& sha256,
                            const std::function<absl::Status(absl::string_view)>& write) {
  PARC_ASSIGN_OR_RETURN(auto db, Connection::Open(conninfo_));
  PARC_ASSIGN_OR_RETURN(Result head,
                        db->Exec("SELECT size FROM artifacts WHERE sha256 = $1", {sha256}));
  if (head.rows() == 0) return absl::NotFoundError(absl::StrCat("unknown artifact ", sha256));
  const uint64_t size = static_cast<uint64_t>(head.Int(0, 0));
  uint64_t got = 0;
  for (int seq = 0; got < size; ++seq) {
    PARC_ASSIGN_OR_RETURN(
        Result chunk,
        db->Exec("SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2", {sha256, seq}));
    if (chunk.rows() == 0) {
      return absl::DataLossError(
          absl::StrCat("artifact ", sha256, ": chunk ", seq, " missing in the database"));
    }
    std::string data = chunk.Bytes(0, 0);
    if (data.empty()) {
      return absl::DataLossError(absl::StrCat("artifact ", sha256, ": empty chunk ", seq));
    }
    PARC_RETURN_IF_ERROR(write(data));
    got += data.size();
  }
  if (got != size) {
    return absl::DataLossError(
        absl::StrCat("artifact ", sha256, ": ", got, " bytes stored of ", size));
  }
  return absl::OkStatus();
}

}  // namespace parc::server::pg
