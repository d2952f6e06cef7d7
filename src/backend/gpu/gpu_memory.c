/* GPU memory: buffers, copies, weight uploads through pinned staging buffers, and the
 * copy-bandwidth measurement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/gpu/gpu_internal.h"

#if !defined(RF_HIP)
#include <cuda.h>
#endif

/* Every buffer and tensor gets this much beyond its bytes: the product kernels read
 * whole 16-byte vectors around a row's ends. */
#define TAIL_PAD 64
static size_t pad_bytes(size_t n) { return (n + TAIL_PAD + 255) & ~(size_t)255; }

static rf_status oom(const char *what, size_t bytes)
{
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return rf_fail(RF_STATUS_NOMEM,
                   "gpu: out of device memory: %s asked for %.1f MiB, %.1f MiB free of %.1f MiB",
                   what, (double)bytes / 1048576.0, (double)free_b / 1048576.0,
                   (double)total_b / 1048576.0);
}

rf_status rf_gpu_malloc(void **p, size_t bytes, const char *what)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, pad_bytes(bytes));
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *p = NULL;
        return oom(what, bytes);
    }
    return RF_OK;
}

void *rf_gpu_alloc(void *ctx, size_t bytes)
{
    struct rf_gpu_ctx *c = ctx;
    void *p;
    if (rf_gpu_malloc(&p, bytes, "buffer") != RF_OK) return NULL;
    rf_gpu_note_launch();
    if (cudaMemsetAsync(p, 0, pad_bytes(bytes), c->stream) != cudaSuccess ||
        cudaStreamSynchronize(c->stream) != cudaSuccess) {
        cudaFree(p);
        rf_fail(RF_STATUS_DEVICE, "gpu: clearing a new buffer of %zu bytes failed", bytes);
        return NULL;
    }
    return p;
}

void rf_gpu_release(void *ctx, void *buf)
{
    (void)ctx;
    if (buf) cudaFree(buf);
}

rf_status rf_gpu_copy_in(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct rf_gpu_ctx *c = ctx;
    if (bytes == 0) return RF_OK;
    rf_gpu_note_launch();
    RF_GPU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    return RF_OK;
}

rf_status rf_gpu_copy_out(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct rf_gpu_ctx *c = ctx;
    RF_TRY(rf_gpu_take_error(c));
    if (bytes) RF_GPU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    RF_GPU_TRY(cudaStreamSynchronize(c->stream));
    return RF_OK;
}

void *rf_gpu_host_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    void *p = NULL;
    if (cudaMallocHost(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

void rf_gpu_host_free(void *ctx, void *p)
{
    (void)ctx;
    if (p) cudaFreeHost(p);
}

rf_status rf_gpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct rf_gpu_ctx *c = ctx;
    if (bytes == 0) return RF_OK;
    rf_gpu_note_launch();
    RF_GPU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    return RF_OK;
}

/* ---- the weight arena (CUDA's virtual memory API, reached through the runtime so
 * that the binary does not link the driver library) ---- */

#if !defined(RF_HIP)
struct vmm_api {
    CUresult (*reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
    CUresult (*addr_free)(CUdeviceptr, size_t);
    CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                       unsigned long long);
    CUresult (*release)(CUmemGenericAllocationHandle);
    CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
    CUresult (*unmap)(CUdeviceptr, size_t);
    CUresult (*set_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
    CUresult (*granularity)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
};
static struct vmm_api vmm;

static bool vmm_load(void)
{
    struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"cuMemAddressReserve", (void **)&vmm.reserve},
        {"cuMemAddressFree", (void **)&vmm.addr_free},
        {"cuMemCreate", (void **)&vmm.create},
        {"cuMemRelease", (void **)&vmm.release},
        {"cuMemMap", (void **)&vmm.map},
        {"cuMemUnmap", (void **)&vmm.unmap},
        {"cuMemSetAccess", (void **)&vmm.set_access},
        {"cuMemGetAllocationGranularity", (void **)&vmm.granularity},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        enum cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion(syms[i].name, syms[i].fn, 12000, cudaEnableDefault,
                                             &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess || !*syms[i].fn)
            return false;
    }
    return true;
}

static CUmemAllocationProp vmm_prop(int device)
{
    CUmemAllocationProp p;
    memset(&p, 0, sizeof p);
    p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    p.location.id = device;
    return p;
}

/* Reserves address space for all of the device's memory; 0 base when unavailable. */
void rf_gpu_arena_init(struct rf_gpu_ctx *c)
{
    struct rf_gpu_arena *a = &c->arena;
    memset(a, 0, sizeof *a);
    size_t free_b, total_b;
    if (!vmm_load() || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return;
    CUmemAllocationProp p = vmm_prop(c->device);
    size_t g = 0;
    if (vmm.granularity(&g, &p, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS || g == 0) return;
    const size_t size = (total_b + g - 1) / g * g;
    CUdeviceptr base;
    if (vmm.reserve(&base, size, 0, 0, 0) != CUDA_SUCCESS) return;
    a->base = base;
    a->reserved = size;
    a->granule = g;
}

static rf_status arena_grow(struct rf_gpu_ctx *c, size_t need)
{
    struct rf_gpu_arena *a = &c->arena;
    const size_t bytes = (need + a->granule - 1) / a->granule * a->granule;
    if (a->mapped + bytes > a->reserved) return oom("weights", need);
    if (a->n_handles == a->cap_handles) {
        const int cap = a->cap_handles ? 2 * a->cap_handles : 64;
        void **h = realloc(a->handles, (size_t)cap * sizeof *h);
        if (!h) return rf_fail(RF_STATUS_NOMEM, "gpu: out of host memory");
        a->handles = h;
        size_t *hb = realloc(a->handle_bytes, (size_t)cap * sizeof *hb);
        if (!hb) return rf_fail(RF_STATUS_NOMEM, "gpu: out of host memory");
        a->handle_bytes = hb;
        a->cap_handles = cap;
    }
    CUmemAllocationProp p = vmm_prop(c->device);
    CUmemGenericAllocationHandle h;
    if (vmm.create(&h, bytes, &p, 0) != CUDA_SUCCESS) return oom("weights", need);
    const CUdeviceptr at = a->base + a->mapped;
    CUmemAccessDesc acc = {.location = p.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    if (vmm.map(at, bytes, 0, h, 0) != CUDA_SUCCESS) {
        vmm.release(h);
        return oom("weights", need);
    }
    if (vmm.set_access(at, bytes, &acc, 1) != CUDA_SUCCESS) {
        vmm.unmap(at, bytes);
        vmm.release(h);
        return rf_fail(RF_STATUS_DEVICE, "gpu: cuMemSetAccess failed on %zu bytes", bytes);
    }
    a->handles[a->n_handles] = (void *)(uintptr_t)h;
    a->handle_bytes[a->n_handles++] = bytes;
    a->mapped += bytes;
    return RF_OK;
}

static void arena_reset(struct rf_gpu_ctx *c)
{
    struct rf_gpu_arena *a = &c->arena;
    if (a->mapped) {
        cudaDeviceSynchronize();
        vmm.unmap(a->base, a->mapped);
    }
    for (int i = 0; i < a->n_handles; i++)
        vmm.release((CUmemGenericAllocationHandle)(uintptr_t)a->handles[i]);
    a->n_handles = 0;
    a->mapped = a->used = 0;
}

void rf_gpu_arena_free(struct rf_gpu_ctx *c)
{
    struct rf_gpu_arena *a = &c->arena;
    if (!a->base) return;
    arena_reset(c);
    vmm.addr_free(a->base, a->reserved);
    free(a->handles);
    free(a->handle_bytes);
    memset(a, 0, sizeof *a);
}

/* Places bytes in the arena; *p NULL (and RF_OK) when the arena is not in use. */
static rf_status arena_alloc(struct rf_gpu_ctx *c, size_t bytes, void **p)
{
    struct rf_gpu_arena *a = &c->arena;
    *p = NULL;
    if (!a->base) return RF_OK;
    const size_t need = a->used + pad_bytes(bytes);
    if (need > a->mapped) RF_TRY(arena_grow(c, need - a->mapped));
    *p = (void *)(uintptr_t)(a->base + a->used);
    a->used = need;
    a->live++;
    return RF_OK;
}

static bool arena_owns(const struct rf_gpu_ctx *c, const void *p)
{
    const uintptr_t u = (uintptr_t)p;
    return c->arena.base && u >= c->arena.base && u < c->arena.base + c->arena.reserved;
}

static void arena_put(struct rf_gpu_ctx *c)
{
    if (--c->arena.live == 0) arena_reset(c);
}
#else
void rf_gpu_arena_init(struct rf_gpu_ctx *c) { memset(&c->arena, 0, sizeof c->arena); }
void rf_gpu_arena_free(struct rf_gpu_ctx *c) { (void)c; }
static rf_status arena_alloc(struct rf_gpu_ctx *c, size_t bytes, void **p)
{
    (void)c;
    (void)bytes;
    *p = NULL;
    return RF_OK;
}
static bool arena_owns(const struct rf_gpu_ctx *c, const void *p)
{
    (void)c;
    (void)p;
    return false;
}
static void arena_put(struct rf_gpu_ctx *c) { (void)c; }
#endif

size_t rf_gpu_weight_bytes(const struct rf_gpu_ctx *c) { return c->arena.mapped + c->loose_bytes; }

/* ---- uploads ---- */

static rf_status stage_init(struct rf_gpu_ctx *c)
{
    if (c->stage[0]) return RF_OK;
    for (int i = 0; i < RF_GPU_STAGE_BUFS; i++) {
        if (cudaMallocHost(&c->stage[i], RF_GPU_STAGE_BYTES) != cudaSuccess) {
            c->stage[i] = NULL;
            (void)cudaGetLastError();
            return rf_fail(RF_STATUS_NOMEM, "gpu: cannot allocate %zu MiB of pinned host memory",
                           RF_GPU_STAGE_BYTES >> 20);
        }
        RF_GPU_TRY(cudaEventCreateWithFlags(&c->stage_done[i], cudaEventDisableTiming));
    }
    return RF_OK;
}

void rf_gpu_stage_free(struct rf_gpu_ctx *c)
{
    for (int i = 0; i < RF_GPU_STAGE_BUFS; i++) {
        if (c->stage[i]) cudaFreeHost(c->stage[i]);
        if (c->stage_done[i]) cudaEventDestroy(c->stage_done[i]);
        c->stage[i] = NULL;
        c->stage_done[i] = NULL;
    }
}

/* Host bytes to device memory through the pinned buffers, in order; the op stream
 * waits for the last piece. */
static rf_status upload(struct rf_gpu_ctx *c, void *dst, const void *src, size_t bytes)
{
    RF_TRY(stage_init(c));
    for (size_t off = 0; off < bytes;) {
        const size_t n = bytes - off < RF_GPU_STAGE_BYTES ? bytes - off : RF_GPU_STAGE_BYTES;
        const int i = c->stage_next;
        c->stage_next = (i + 1) % RF_GPU_STAGE_BUFS;
        RF_GPU_TRY(cudaEventSynchronize(c->stage_done[i]));
        memcpy(c->stage[i], (const uint8_t *)src + off, n);
        RF_GPU_TRY(cudaMemcpyAsync((uint8_t *)dst + off, c->stage[i], n, cudaMemcpyHostToDevice,
                                   c->upload));
        RF_GPU_TRY(cudaEventRecord(c->stage_done[i], c->upload));
        if (off + n == bytes) RF_GPU_TRY(cudaStreamWaitEvent(c->stream, c->stage_done[i], 0));
        off += n;
    }
    return RF_OK;
}

rf_status rf_gpu_load_tensor(void *ctx, struct rf_tensor *t)
{
    struct rf_gpu_ctx *c = ctx;
    if (!t->data || t->nbytes == 0) return RF_OK;
    void *p;
    RF_TRY(arena_alloc(c, t->nbytes, &p));
    const bool loose = !p;
    if (loose) {
        char what[96];
        snprintf(what, sizeof what, "tensor %s", t->name ? t->name : "?");
        RF_TRY(rf_gpu_malloc(&p, t->nbytes, what));
    }
    rf_status s = upload(c, p, t->data, t->nbytes);
    if (s != RF_OK) {
        if (loose) cudaFree(p);
        else arena_put(c);
        return s;
    }
    if (loose) c->loose_bytes += pad_bytes(t->nbytes);
    t->data = p;
    return RF_OK;
}

void rf_gpu_free_tensor(void *ctx, struct rf_tensor *t)
{
    struct rf_gpu_ctx *c = ctx;
    if (!t->data) return;
    if (arena_owns(c, t->data)) {
        arena_put(c);
    } else {
        cudaFree((void *)t->data);
        c->loose_bytes -= pad_bytes(t->nbytes);
    }
    t->data = NULL;
}

/* ---- copy bandwidth ---- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BW_REPS 9

rf_status rf_gpu_copy_bandwidth(int device, size_t bytes, double *bytes_per_s)
{
    if (bytes == 0) bytes = (size_t)1 << 30;
    *bytes_per_s = 0;
    RF_GPU_TRY(cudaSetDevice(device));
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double secs[BW_REPS];
    rf_status s = rf_gpu_malloc(&a, bytes, "bandwidth test");
    if (s == RF_OK) s = rf_gpu_malloc(&b, bytes, "bandwidth test");
    if (s != RF_OK) goto done;
    s = rf_fail(RF_STATUS_DEVICE, "gpu: copy bandwidth measurement failed");
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) goto done;
    /* nonzero contents: a copy of never-touched memory could be cheaper than real data */
    if (cudaMemset(a, 0x5a, bytes) != cudaSuccess) goto done;
    if (cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice) != cudaSuccess) goto done;
    for (int r = 0; r < BW_REPS; r++) {
        float ms = 0;
        if (cudaEventRecord(e0, 0) != cudaSuccess ||
            cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0) != cudaSuccess ||
            cudaEventRecord(e1, 0) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            goto done;
        secs[r] = ms / 1e3;
    }
    qsort(secs, BW_REPS, sizeof *secs, cmp_double);
    *bytes_per_s = 2.0 * (double)bytes / secs[BW_REPS / 2];
    s = RF_OK;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (a) cudaFree(a);
    if (b) cudaFree(b);
    return s;
}
