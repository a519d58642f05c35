#include "server/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace parc::server {

bool ArtifactStore::IsSha256(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(std::string dir,
                                                                   SharedArtifacts* shared) {
  PARC_RETURN_IF_ERROR(common::MakeDirs(dir + "/tmp", 0755));
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(std::move(dir), shared));
}

bool ArtifactStore::Has(const std::string& sha256) const {
  if (!IsSha256(sha256)) return false;
  if (shared_ == nullptr) return common::PathExists(PathOf(sha256));
  // The shared copy decides: a file here whose upload to it failed does not count.
  auto has = shared_->Has(sha256);
  return has.ok() && *has;
}

absl::Status ArtifactStore::EnsureLocal(const std::string& sha256) const {
  if (!IsSha256(sha256)) return absl::InvalidArgumentError("not an artifact hash");
  const std::string path = PathOf(sha256);
  if (common::PathExists(path)) return absl::OkStatus();
  if (shared_ == nullptr) return absl::NotFoundError("unknown artifact");
  std::lock_guard<std::mutex> lock(fetch_mu_);
  if (common::PathExists(path)) return absl::OkStatus();  // fetched meanwhile
  PARC_ASSIGN_OR_RETURN(std::string suffix, common::RandomHex(8));
  const std::string tmp = absl::StrCat(dir_, "/tmp/", sha256, ".", suffix);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return common::ErrnoStatus("cannot create", tmp, errno);
  common::Sha256 hash;
  absl::Status s = shared_->Get(sha256, [&](absl::string_view data) -> absl::Status {
    hash.Update(data);
    return common::WriteAll(fd, data, tmp);
  });
  if (s.ok() && hash.FinishHex() != sha256) {
    s = absl::DataLossError(
        absl::StrCat("artifact ", sha256, ": the shared copy does not hash to its name"));
  }
  if (s.ok() && ::fsync(fd) != 0) s = common::ErrnoStatus("cannot sync", tmp, errno);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = common::ErrnoStatus("cannot rename to", path, errno);
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

ArtifactStore::Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

absl::Status ArtifactStore::Upload::Append(const std::string& data) {
  if (received_ + data.size() > size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact ", sha256_, ": more than the ", size_, " bytes announced"));
  }
  PARC_RETURN_IF_ERROR(common::WriteAll(fd_, data, tmp_path_));
  hash_.Update(data);
  received_ += data.size();
  return absl::OkStatus();
}

absl::Status ArtifactStore::Upload::Commit() {
  if (received_ != size_) {
    return absl::InvalidArgumentError(absl::StrCat("artifact ", sha256_, ": received ", received_,
                                                   " bytes of the ", size_, " announced"));
  }
  std::string actual = hash_.FinishHex();
  if (actual != sha256_) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact ", sha256_, ": the bytes received hash to ", actual));
  }
  if (::fsync(fd_) != 0) return common::ErrnoStatus("cannot sync", tmp_path_, errno);
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
    return common::ErrnoStatus("cannot rename to", final_path_, errno);
  }
  committed_ = true;
  // Received once it is where every node reads it.
  if (shared_ != nullptr) return shared_->Put(sha256_, final_path_, size_);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ArtifactStore::Upload>> ArtifactStore::BeginUpload(
    const std::string& sha256, uint64_t size) {
  if (!IsSha256(sha256)) {
    return absl::InvalidArgumentError("sha256 must be 64 lower-case hex characters");
  }
  if (size > kMaxArtifactBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact of ", size, " bytes: the limit is ", kMaxArtifactBytes));
  }
  std::unique_ptr<Upload> up(new Upload());
  up->sha256_ = sha256;
  up->size_ = size;
  up->final_path_ = PathOf(sha256);
  up->shared_ = shared_;
  PARC_ASSIGN_OR_RETURN(std::string suffix, common::RandomHex(8));
  up->tmp_path_ = absl::StrCat(dir_, "/tmp/", sha256, ".", suffix);
  up->fd_ = ::open(up->tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (up->fd_ < 0) return common::ErrnoStatus("cannot create", up->tmp_path_, errno);
  return up;
}

}  // namespace parc::server
