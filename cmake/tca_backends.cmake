# Optional backends: the TCA_WITH_<X> options and the source buckets of src/backends.

# tca_optional_backend(X description Package): defines the cache option TCA_WITH_X.
#  - unset: ON when find_package(Package) succeeds, else OFF (said in the configure log);
#  - ON:    find_package(Package) must succeed, else a configure error (never a silent OFF);
#  - OFF:   the package is not looked for at all.
macro(tca_optional_backend x description package)
  if(NOT DEFINED TCA_WITH_${x})
    find_package(${package} QUIET)
    if(${package}_FOUND)
      set(TCA_WITH_${x} ON CACHE BOOL "Build ${description} (default: when ${package} is found)")
    else()
      set(TCA_WITH_${x} OFF CACHE BOOL "Build ${description} (default: when ${package} is found)")
    endif()
    if(NOT TCA_WITH_${x})
      message(STATUS "tca: ${package} not found: building without ${description}")
    endif()
  else()
    # Given on the command line: keep the value, give the entry its type and help text.
    set(TCA_WITH_${x} ${TCA_WITH_${x}} CACHE BOOL "Build ${description} (default: when ${package} is found)" FORCE)
  endif()
  if(TCA_WITH_${x})
    find_package(${package} QUIET)
    if(NOT ${package}_FOUND)
      message(FATAL_ERROR "TCA_WITH_${x}=ON but ${package} was not found (${description}); install it "
        "(scripts/install-deps) or pass -DTCA_WITH_${x}=OFF")
    endif()
  endif()
endmacro()

# tca_classify_backend_sources(): every .cpp under src/backends into one bucket, by its path
# relative to src/backends, so the layout can be flat (opencl_device.cpp) or a folder per backend
# (opencl/context.cpp):
#   TCA_NO_CLBLAST_SOURCES  a path naming without_clblast (what an OpenCL build without CLBlast
#                        compiles in place of the CLBlast bucket)
#   TCA_CLBLAST_SOURCES  a path naming clblast otherwise (the OpenCL GEMM through CLBlast)
#   TCA_OPENCL_SOURCES   opencl_* or opencl/...
#   TCA_VULKAN_SOURCES   vulkan_* or vulkan/...
#   TCA_COMMON_BACKEND_SOURCES  the rest: the CPU reference and code shared by the backends
function(tca_classify_backend_sources)
  file(GLOB_RECURSE all CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backends/*.cpp)
  set(no_clblast)
  set(clblast)
  set(opencl)
  set(vulkan)
  set(common)
  foreach(f IN LISTS all)
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR}/src/backends ${f})
    if(rel MATCHES "without_clblast")
      list(APPEND no_clblast ${f})
    elseif(rel MATCHES "clblast")
      list(APPEND clblast ${f})
    elseif(rel MATCHES "^opencl[_/]")
      list(APPEND opencl ${f})
    elseif(rel MATCHES "^vulkan[_/]")
      list(APPEND vulkan ${f})
    else()
      list(APPEND common ${f})
    endif()
  endforeach()
  set(TCA_NO_CLBLAST_SOURCES ${no_clblast} PARENT_SCOPE)
  set(TCA_CLBLAST_SOURCES ${clblast} PARENT_SCOPE)
  set(TCA_OPENCL_SOURCES ${opencl} PARENT_SCOPE)
  set(TCA_VULKAN_SOURCES ${vulkan} PARENT_SCOPE)
  set(TCA_COMMON_BACKEND_SOURCES ${common} PARENT_SCOPE)
endfunction()
