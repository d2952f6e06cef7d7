# GPU backend: RF_CUDA (auto when nvcc is found) or RF_HIP. Filled in with the
# backend; with neither, src/backend/gpu_off.c answers that the build has no GPU.
