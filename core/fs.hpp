// File-system helpers: whole-file IO with errors naming the path, fsync, and atomic publication
// (write to a temporary name, fsync, rename, fsync the parent directory).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace strata {

std::string read_file(const std::filesystem::path& path);
void write_file_durable(const std::filesystem::path& path, std::string_view bytes);
void fsync_path(const std::filesystem::path& path);
// Writes `bytes` to `path` atomically: readers see either the old file or the complete new one.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
// Renames a finished temporary directory onto its final name and makes the rename durable.
void publish_directory(const std::filesystem::path& tmp, const std::filesystem::path& final_path);

}  // namespace strata
