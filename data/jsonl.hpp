// JSON Lines input for `strata prep`: each non-empty line is a JSON object whose string field
// (default "text") is one document. A small strict parser: only what extracting a field needs.
#pragma once
#include <string>
#include <string_view>

namespace strata::data {

// Returns the decoded string value of `field` in the JSON object `line`. `where` ("file:line")
// prefixes errors: malformed JSON (with the column), a missing field, or a value that is not a string.
std::string jsonl_field(std::string_view line, std::string_view field, const std::string& where);

}  // namespace strata::data
