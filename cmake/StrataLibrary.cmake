# strata_library(<folder> SOURCES ... DEPS ...): one static library per folder. All libraries share
# one precompiled header of the LibTorch includes; executables share a second one (they compile
# with -fPIE rather than -fPIC, and a PCH must match those flags).
function(strata_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_library(strata_${name} STATIC ${A_SOURCES})
  target_link_libraries(strata_${name} PUBLIC ${A_DEPS} ${TORCH_LIBRARIES} spdlog::spdlog fmt::fmt)
  target_compile_options(strata_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  strata_use_pch(strata_${name})
endfunction()

function(strata_use_pch target)
  get_target_property(type ${target} TYPE)
  set(slot STRATA_PCH_OWNER_${type})
  get_property(owner GLOBAL PROPERTY ${slot})
  if(NOT owner)
    target_precompile_headers(${target} PRIVATE ${PROJECT_SOURCE_DIR}/core/torch_pch.hpp)
    set_property(GLOBAL PROPERTY ${slot} ${target})
  else()
    target_precompile_headers(${target} REUSE_FROM ${owner})
  endif()
endfunction()
