# Third-party dependencies. LibTorch: CMAKE_PREFIX_PATH wins; otherwise the PyPI wheel in the per-user
# cache venv that scripts/setup creates (STRATA_VENV, default ~/.cache/strata/venv).
if(NOT DEFINED STRATA_VENV)
  if(DEFINED ENV{STRATA_VENV})
    set(STRATA_VENV $ENV{STRATA_VENV})
  else()
    set(STRATA_VENV $ENV{HOME}/.cache/strata/venv)
  endif()
endif()
# The wheel's CMake config probes the local GPU to pick CUDA arches; there is none on a build
# machine, so name the arches Strata's CUDA kernels (none yet: LibTorch's own) would target.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  if(NOT EXISTS ${STRATA_VENV}/bin/python)
    message(FATAL_ERROR "LibTorch not found: run scripts/setup (installs the torch wheel into ${STRATA_VENV}) "
                        "or pass -DCMAKE_PREFIX_PATH=/path/to/libtorch")
  endif()
  execute_process(COMMAND ${STRATA_VENV}/bin/python -c "import torch,sys;sys.stdout.write(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE STRATA_TORCH_PREFIX RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not import torch from ${STRATA_VENV}/bin/python: run scripts/setup")
  endif()
  list(APPEND CMAKE_PREFIX_PATH ${STRATA_TORCH_PREFIX})
  find_package(Torch REQUIRED)
endif()
message(STATUS "strata: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
get_filename_component(STRATA_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)

find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(Protobuf REQUIRED)  # use ${Protobuf_LIBRARIES}: LibTorch defines its own protobuf:: targets
find_package(CLI11 QUIET)
find_package(Threads REQUIRED)
find_library(STRATA_ISAL isal REQUIRED)
find_library(STRATA_SENTENCEPIECE sentencepiece REQUIRED)
find_library(STRATA_SENTENCEPIECE_TRAIN sentencepiece_train REQUIRED)

# Shim folder: fmt, spdlog and protobuf (google/) resolve to Debian's copies even though LibTorch's include folder
# carries other versions of them; everything in Strata then compiles against one copy of each.
# STRATA_SYSTEM_INCLUDE is where those Debian headers live (/usr/include, or the usr/include of a
# folder the .deb files were unpacked into, as scripts/gpu/check.sh does on a machine without them).
set(STRATA_SYSTEM_INCLUDE /usr/include CACHE PATH "folder holding Debian's fmt/, spdlog/ and google/protobuf headers")
if(NOT STRATA_SYSTEM_INCLUDE STREQUAL "/usr/include")
  include_directories(SYSTEM ${STRATA_SYSTEM_INCLUDE})  # catch2/, isa-l, sentencepiece, gloo/ from that folder too
endif()
set(STRATA_SHIM_INCLUDE ${CMAKE_BINARY_DIR}/shim_include)
file(MAKE_DIRECTORY ${STRATA_SHIM_INCLUDE})
foreach(d fmt spdlog google)
  if(NOT EXISTS ${STRATA_SHIM_INCLUDE}/${d})
    file(CREATE_LINK ${STRATA_SYSTEM_INCLUDE}/${d} ${STRATA_SHIM_INCLUDE}/${d} SYMBOLIC)
  endif()
endforeach()
