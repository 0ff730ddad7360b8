#include "snapshot/wire.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.hpp"

namespace strata::snapshot {

namespace {
constexpr uint64_t kMaxPayload = uint64_t(1) << 40;

bool send_all(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
    c += w, n -= static_cast<size_t>(w);
  }
  return true;
}

bool recv_all(int fd, void* p, size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd, c, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    c += r, n -= static_cast<size_t>(r);
  }
  return true;
}

void set_timeout(int fd, double s) {
  timeval tv{static_cast<time_t>(s), static_cast<suseconds_t>((s - static_cast<time_t>(s)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
}  // namespace

std::optional<Reply> call(const Endpoint& to, const Request& req, const std::vector<uint8_t>& payload, double timeout_s) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (::getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &res) != 0 || !res) return std::nullopt;
  int fd = ::socket(res->ai_family, res->ai_socktype, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return std::nullopt;
  }
  set_timeout(fd, timeout_s);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const bool connected = ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  ::freeaddrinfo(res);
  std::optional<Reply> out;
  uint64_t len = payload.size();
  if (connected && send_all(fd, &req, sizeof req) && send_all(fd, &len, 8) && send_all(fd, payload.data(), len)) {
    Reply r;
    uint64_t n = 0;
    if (recv_all(fd, &r.status, 4) && recv_all(fd, &r.value, 8) && recv_all(fd, &n, 8) && n <= kMaxPayload) {
      r.payload.resize(n);
      if (recv_all(fd, r.payload.data(), n)) out = std::move(r);
    }
  }
  ::close(fd);
  return out;
}

Server::Server(int port, Handler handler) : handler_(std::move(handler)) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) fail("smp: socket() failed: {}", std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 64) != 0) {
    const int e = errno;
    ::close(fd_);
    fail("smp: cannot listen on port {}: {} (snapshot.port is taken by another process?)", port, std::strerror(e));
  }
  thread_ = std::thread([this] { loop(); });
}

Server::~Server() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

void Server::loop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) continue;
    ++active_;  // one thread per connection: a handler may call other SMPs that call back
    std::thread([this, c] {
      serve(c);
      --active_;
    }).detach();
  }
  while (active_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

void Server::serve(int c) {
  set_timeout(c, 60);
  Request req;
  uint64_t len = 0;
  std::vector<uint8_t> payload;
  bool ok = recv_all(c, &req, sizeof req) && recv_all(c, &len, 8) && len <= kMaxPayload;
  if (ok) {
    payload.resize(len);
    ok = recv_all(c, payload.data(), len);
  }
  if (ok) {
    Reply r;
    try {
      r = handler_(req, payload);
    } catch (const std::exception& e) {
      r.status = 1;
      std::string msg = e.what();
      r.payload.assign(msg.begin(), msg.end());
    }
    uint64_t n = r.payload.size();
    (void)(send_all(c, &r.status, 4) && send_all(c, &r.value, 8) && send_all(c, &n, 8) && send_all(c, r.payload.data(), n));
  }
  ::close(c);
}

}  // namespace strata::snapshot
