# GPU backend: RF_CUDA (auto when a CUDA compiler is found) or RF_HIP. With neither,
# src/backend/gpu_off.c answers that the build has no GPU and nothing here is built.
#
# CUDA: sm_90 machine code plus compute_90 PTX (newer cards JIT it), the CUDA runtime
# linked statically, cuBLAS (opened at run time) for the prompt products, warnings as
# errors for host and device code. HIP: the same .cu files compiled as HIP for RDNA2, CDNA2 and RDNA3 (no
# hipBLAS: the tiled GEMM kernel stands in for cuBLAS).
include(CheckLanguage)

option(RF_HIP "Build the GPU backend with HIP (AMD)" OFF)
set(rf_cuda_auto OFF)
if(NOT RF_HIP AND NOT RF_SANITIZE AND NOT RF_FUZZ)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(rf_cuda_auto ON)
  endif()
endif()
option(RF_CUDA "Build the GPU backend with CUDA" ${rf_cuda_auto})
if(RF_CUDA AND RF_HIP)
  message(FATAL_ERROR "RF_CUDA and RF_HIP are exclusive")
endif()

# The project's warning flags are gcc's: keep them to C files once other languages
# join (for the library target, made already, and for targets made after this).
function(rf_c_only_options)
  get_property(opts DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY COMPILE_OPTIONS)
  set(wrapped "")
  foreach(o ${opts})
    list(APPEND wrapped "$<$<COMPILE_LANGUAGE:C>:${o}>")
  endforeach()
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY COMPILE_OPTIONS ${wrapped})
  set_property(TARGET rocmforge PROPERTY COMPILE_OPTIONS ${wrapped})
endfunction()

file(GLOB RF_GPU_C_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/gpu/*.c)
file(GLOB RF_GPU_CU_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/gpu/*.cu)

if(RF_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  rf_c_only_options()
  target_sources(rocmforge PRIVATE ${RF_GPU_C_SOURCES} ${RF_GPU_CU_SOURCES})
  # The library target exists before CUDA is enabled: give it the architectures.
  set_target_properties(rocmforge PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  target_compile_definitions(rocmforge PUBLIC RF_HAVE_GPU)
  # The C flags of the project (-Wshadow, -Wstrict-prototypes, ...) are C-only;
  # device files get their own set.
  set(rf_cu_flags -Xcompiler=-Wall,-Wextra)
  if(RF_WERROR)
    list(APPEND rf_cu_flags -Xcompiler=-Werror --Werror=all-warnings)
  endif()
  set_source_files_properties(${RF_GPU_CU_SOURCES} PROPERTIES COMPILE_OPTIONS "${rf_cu_flags}")
  # cuBLAS is opened at run time (dlopen) when a GPU backend starts: a GPU build's
  # binaries start without it and CPU-only runs do not map it. Its headers only here.
  target_include_directories(rocmforge PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(rocmforge PUBLIC CUDA::cudart_static ${CMAKE_DL_LIBS})
  message(STATUS "rocmforge: GPU backend with CUDA (${CMAKE_CUDA_ARCHITECTURES})")
elseif(RF_HIP)
  if(NOT DEFINED CMAKE_HIP_ARCHITECTURES)
    set(CMAKE_HIP_ARCHITECTURES "gfx1030;gfx90a;gfx1100")
  endif()
  enable_language(HIP)
  rf_c_only_options()
  set_source_files_properties(${RF_GPU_CU_SOURCES} PROPERTIES LANGUAGE HIP)
  target_sources(rocmforge PRIVATE ${RF_GPU_C_SOURCES} ${RF_GPU_CU_SOURCES})
  target_compile_definitions(rocmforge PUBLIC RF_HAVE_GPU RF_HIP __HIP_PLATFORM_AMD__)
  set(rf_hip_flags -Wall -Wextra)
  if(RF_WERROR)
    list(APPEND rf_hip_flags -Werror)
  endif()
  set_source_files_properties(${RF_GPU_CU_SOURCES} PROPERTIES COMPILE_OPTIONS "${rf_hip_flags}")
  find_package(hip REQUIRED)
  target_link_libraries(rocmforge PUBLIC hip::host)
  message(STATUS "rocmforge: GPU backend with HIP (${CMAKE_HIP_ARCHITECTURES})")
endif()

# GPU tests: tests/gpu/test_*.c, label gpu, run on a machine with a GPU (make test-gpu).
# Registered at the end of the top directory, unless the test tree did it already.
function(rf_gpu_add_tests)
  if(NOT (RF_CUDA OR RF_HIP) OR NOT RF_BUILD_TESTS)
    return()
  endif()
  file(GLOB srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/gpu/test_*.c)
  foreach(src ${srcs})
    get_filename_component(name ${src} NAME_WE)
    if(TARGET ${name})
      continue()
    endif()
    add_executable(${name} ${src})
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
    target_link_libraries(${name} PRIVATE rocmforge)
    if(CMOCKA_LIB)
      target_link_libraries(${name} PRIVATE ${CMOCKA_LIB})
    endif()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS "gpu" ENVIRONMENT
      "RF_SOURCE=${PROJECT_SOURCE_DIR};RF_BUILD=${PROJECT_BINARY_DIR};RF_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL rf_gpu_add_tests)
