#include "core/log.hpp"

#include <cstdlib>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace strata {

void init_logging(int rank, int world_size) {
  auto logger = spdlog::stderr_color_mt("strata" + std::to_string(rank));
  std::string prefix = world_size > 1 ? "[rank " + std::to_string(rank) + "] " : "";
  logger->set_pattern("%H:%M:%S %^%L%$ " + prefix + "%v");
  const char* all = std::getenv("STRATA_LOG_ALL_RANKS");
  bool loud = rank == 0 || (all && std::string(all) == "1");
  auto level = loud ? spdlog::level::info : spdlog::level::warn;
  if (const char* env = std::getenv("STRATA_LOG_LEVEL")) {
    auto parsed = spdlog::level::from_str(env);
    if (parsed != spdlog::level::off || std::string(env) == "off") level = loud ? parsed : std::max(parsed, spdlog::level::warn);
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace strata
