#include "core/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

void write_file_durable(const fs::path& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create '{}': {}", path.string(), std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
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
  fsync_path(final_path.parent_path());
}

}  // namespace strata
