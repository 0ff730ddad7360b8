#include "core/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace strata {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open '{}' to fsync: {}", path.string(), std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("fsync of '{}' failed: {}", path.string(), std::strerror(err));
}

namespace {

// Test hook: STRATA_FAULT_ENOSPC=<text> makes writes to paths containing <text> fail with ENOSPC
// once half of the bytes are written, as a full disk would.
bool inject_enospc(const fs::path& path) {
  const char* v = std::getenv("STRATA_FAULT_ENOSPC");
  return v && *v && path.string().find(v) != std::string::npos;
}

}  // namespace

void write_file_durable(const fs::path& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create '{}': {}", path.string(), std::strerror(errno));
  const bool full = inject_enospc(path);
  size_t done = 0;
  while (done < bytes.size()) {
    if (full && done >= bytes.size() / 2) {
      ::close(fd);
      fail("write to '{}' failed after {} of {} bytes: {}", path.string(), done, bytes.size(), std::strerror(ENOSPC));
    }
    const size_t chunk = full ? std::max<size_t>(1, bytes.size() / 2 - done) : bytes.size() - done;
    ssize_t n = ::write(fd, bytes.data() + done, std::min(chunk, bytes.size() - done));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail("write to '{}' failed after {} of {} bytes: {}", path.string(), done, bytes.size(), std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    fail("fsync of '{}' failed: {}", path.string(), std::strerror(err));
  }
  if (::close(fd) != 0) fail("close of '{}' failed: {}", path.string(), std::strerror(errno));
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  try {
    write_file_durable(tmp, bytes);
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

void publish_directory(const fs::path& tmp, const fs::path& final_path) {
  fsync_path(tmp);
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec) fail("cannot publish '{}' as '{}': {}", tmp.string(), final_path.string(), ec.message());
  fsync_path(final_path.parent_path().empty() ? fs::path(".") : final_path.parent_path());
}

}  // namespace strata
