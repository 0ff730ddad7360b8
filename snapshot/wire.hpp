// The SMPs' own transport: one request per TCP connection, peer to peer. A request is
// {op, a, v, b}; a reply is {status, value, payload}. Any SMP can serve its fragments to any other,
// so a replacement SMP rebuilds from whoever survives (no process group to re-form, no store
// server that could be the node that died).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace strata::snapshot {

struct Request {
  uint32_t op = 0;
  uint32_t a = 0;
  int64_t v = 0;
  uint64_t b = 0;
};

struct Reply {
  int32_t status = 0;  // 0 = ok
  int64_t value = 0;
  std::vector<uint8_t> payload;
};

struct Endpoint {
  std::string host;
  int port = 0;
};

// Sends one request (with an optional payload); nullopt when the peer is unreachable or the
// connection breaks (a dead node), never an exception for that.
std::optional<Reply> call(const Endpoint& to, const Request& req, const std::vector<uint8_t>& payload = {},
                          double timeout_s = 30);

class Server {
 public:
  using Handler = std::function<Reply(const Request&, const std::vector<uint8_t>& payload)>;
  // Listens on 0.0.0.0:port (fails naming the port when it is taken); handles requests on a thread.
  Server(int port, Handler handler);
  ~Server();
  Server(const Server&) = delete;

 private:
  void loop();
  void serve(int fd);
  int fd_ = -1;
  std::atomic<int> active_{0};
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace strata::snapshot
