// Recipes: arbitrary YAML text through the schema (types, ranges, includes refused from memory).
#include "tests/fuzz/fuzz_input.hpp"
#include "trainer/recipe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return strata::fuzz::run([&] {
    std::string text(reinterpret_cast<const char*>(data), size);
    strata::trainer::load_recipe_text(text, "fuzz.yaml");
  });
}
