#include "snapshot/spawn.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.hpp"
#include "snapshot/smp.hpp"

namespace strata::snapshot {

bool smp_running(const std::string& lock_file) {
  int fd = ::open(lock_file.c_str(), O_RDWR);
  if (fd < 0) return false;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  if (free) ::flock(fd, LOCK_UN);
  ::close(fd);
  return !free;
}

bool ensure_smp(const std::string& lock_file, const std::vector<std::string>& args, const std::string& log_file) {
  if (smp_running(lock_file)) return false;
  std::vector<std::string> all = {"/proc/self/exe"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) fail("snapshot: cannot resolve /proc/self/exe to start the SMP");
  exe[n] = 0;
  const pid_t child = ::fork();
  if (child < 0) fail("snapshot: fork() for the SMP failed: {}", std::strerror(errno));
  if (child == 0) {  // only async-signal-safe calls until exec
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
    for (int f = 3; f < 1024; ++f) ::close(f);
    ::execv(exe, argv.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(child, &st, 0);
  return true;
}

void wait_for_smp(const Endpoint& ep, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (auto r = call(ep, {kPing, 0, 0, 0}, {}, 2); r && r->status == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fail("snapshot: the SMP at {}:{} did not answer within {:.0f} s (see smp-n*.log in the run directory)", ep.host, ep.port,
       timeout_s);
}

}  // namespace strata::snapshot
