/* Sampler chain: penalties, top-k, top-p, min-p, temperature, draw.
 *
 * Cost per call for a vocabulary of V: one O(V) copy of the logits, O(V log k) for
 * top-k (a bounded heap; most logits fail the first comparison), and for top-p alone
 * a heap of growing size (256, 2048, ...) until the kept mass reaches p, so a full
 * sort happens only when the distribution is nearly flat. */
#include "sampling/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/status.h"

struct rf_sampler {
    struct rf_sampler_params p;
    int32_t n_vocab;
    struct rf_rng rng;
    struct rf_cands c;
    rf_token *hist;    /* (penalty_last_n) ring of the last accepted tokens */
    rf_token *scratch; /* (penalty_last_n) */
    int32_t hist_n;    /* valid entries */
    int32_t hist_next; /* slot the next token goes to */
};

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rf_rng_seed(struct rf_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rf_rng_next(struct rf_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rf_rng_uniform(struct rf_rng *r) { return (double)(rf_rng_next(r) >> 11) * 0x1p-53; }

/* ---- candidate lists ---- */

bool rf_cands_alloc(struct rf_cands *c, int32_t cap)
{
    memset(c, 0, sizeof *c);
    const size_t n = cap > 0 ? (size_t)cap : 1;
    c->ids = malloc(n * sizeof *c->ids);
    c->logits = malloc(n * sizeof *c->logits);
    c->tmp_ids = malloc(n * sizeof *c->tmp_ids);
    c->tmp_logits = malloc(n * sizeof *c->tmp_logits);
    c->cap = cap;
    if (c->ids && c->logits && c->tmp_ids && c->tmp_logits) return true;
    rf_cands_free(c);
    return false;
}

void rf_cands_free(struct rf_cands *c)
{
    free(c->ids);
    free(c->logits);
    free(c->tmp_ids);
    free(c->tmp_logits);
    c->ids = c->tmp_ids = NULL;
    c->logits = c->tmp_logits = NULL;
    c->n = c->cap = 0;
}

void rf_cands_fill(struct rf_cands *c, const float *logits, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        c->ids[i] = i;
        c->logits[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    }
    c->n = n;
    c->sorted = false;
}

static void cands_swap_tmp(struct rf_cands *c)
{
    rf_token *ids = c->ids;
    float *lg = c->logits;
    c->ids = c->tmp_ids;
    c->logits = c->tmp_logits;
    c->tmp_ids = ids;
    c->tmp_logits = lg;
}

/* The candidate order: higher logit first, lower id on ties. */
static bool better(float la, rf_token ia, float lb, rf_token ib)
{
    return la > lb || (la == lb && ia < ib);
}

/* Min-heap by that order: the root is the worst of the heap. */
static void heap_sift(rf_token *ids, float *lg, int32_t n, int32_t i)
{
    for (;;) {
        int32_t w = i;
        const int32_t l = 2 * i + 1, r = l + 1;
        if (l < n && better(lg[w], ids[w], lg[l], ids[l])) w = l;
        if (r < n && better(lg[w], ids[w], lg[r], ids[r])) w = r;
        if (w == i) return;
        const rf_token ti = ids[i];
        const float tl = lg[i];
        ids[i] = ids[w];
        lg[i] = lg[w];
        ids[w] = ti;
        lg[w] = tl;
        i = w;
    }
}

/* Writes the best k of the n candidates, sorted, to the tmp buffers. 1 <= k <= n. */
static void select_top(struct rf_cands *c, int32_t k)
{
    rf_token *hi = c->tmp_ids;
    float *hl = c->tmp_logits;
    memcpy(hi, c->ids, (size_t)k * sizeof *hi);
    memcpy(hl, c->logits, (size_t)k * sizeof *hl);
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_sift(hi, hl, k, i);
    for (int32_t i = k; i < c->n; i++) {
        if (!better(c->logits[i], c->ids[i], hl[0], hi[0])) continue;
        hi[0] = c->ids[i];
        hl[0] = c->logits[i];
        heap_sift(hi, hl, k, 0);
    }
    /* Heap sort: moving the worst to the back leaves the best at the front. */
    for (int32_t end = k - 1; end > 0; end--) {
        const rf_token ti = hi[0];
        const float tl = hl[0];
        hi[0] = hi[end];
        hl[0] = hl[end];
        hi[end] = ti;
        hl[end] = tl;
        heap_sift(hi, hl, end, 0);
    }
}

static int32_t argmax_index(const struct rf_cands *c)
{
    if (c->n <= 0) return -1;
    if (c->sorted) return 0;
    int32_t best = 0;
    for (int32_t i = 1; i < c->n; i++)
        if (better(c->logits[i], c->ids[i], c->logits[best], c->ids[best])) best = i;
    return best;
}

/* ---- stages ---- */

static int cmp_token(const void *a, const void *b)
{
    const rf_token x = *(const rf_token *)a, y = *(const rf_token *)b;
    return (x > y) - (x < y);
}

void rf_sample_penalties(float *logits, int32_t n_vocab, const rf_token *window, int32_t n_window,
                         float repeat, float freq, float presence, rf_token *scratch)
{
    if (n_window <= 0) return;
    memcpy(scratch, window, (size_t)n_window * sizeof *scratch);
    qsort(scratch, (size_t)n_window, sizeof *scratch, cmp_token);
    for (int32_t i = 0; i < n_window;) {
        const rf_token t = scratch[i];
        int32_t j = i;
        while (j < n_window && scratch[j] == t) j++;
        const int32_t count = j - i;
        i = j;
        if (t < 0 || t >= n_vocab) continue;
        float l = logits[t];
        l = l > 0 ? l / repeat : l * repeat;
        logits[t] = l - ((float)count * freq + presence);
    }
}

void rf_sample_top_k(struct rf_cands *c, int32_t k)
{
    if (k <= 0 || k >= c->n) return;
    if (!c->sorted) {
        select_top(c, k);
        cands_swap_tmp(c);
        c->sorted = true;
    }
    c->n = k;
}

/* Max logit and sum of exp(logit - max) over the candidates. */
static double softmax_denominator(const struct rf_cands *c, float *max_out)
{
    float max = c->logits[argmax_index(c)];
    double sum = 0;
    if (isinf(max) && max < 0) max = 0; /* all -inf: every weight is 0 */
    for (int32_t i = 0; i < c->n; i++) sum += exp((double)c->logits[i] - max);
    *max_out = max;
    return sum;
}

/* Smallest prefix of sorted (ids, logits) whose mass reaches p; 0 when even the whole
 * list falls short (rounding). */
static int32_t mass_prefix(const float *lg, int32_t n, float max, double sum, float p)
{
    double cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += exp((double)lg[i] - max) / sum;
        if (cum >= p) return i + 1;
    }
    return 0;
}

void rf_sample_top_p(struct rf_cands *c, float p)
{
    if (p >= 1.0f || c->n <= 1) return;
    float max;
    const double sum = softmax_denominator(c, &max);
    if (!(sum > 0)) return;
    if (c->sorted) {
        const int32_t cut = mass_prefix(c->logits, c->n, max, sum, p);
        if (cut > 0) c->n = cut;
        return;
    }
    int32_t m = c->n < 256 ? c->n : 256;
    for (;;) {
        select_top(c, m);
        int32_t cut = mass_prefix(c->tmp_logits, m, max, sum, p);
        if (cut == 0 && m == c->n) cut = m;
        if (cut > 0) {
            cands_swap_tmp(c);
            c->n = cut;
            c->sorted = true;
            return;
        }
        m = (c->n / 8 < m) ? c->n : m * 8;
    }
}

void rf_sample_min_p(struct rf_cands *c, float p)
{
    if (p <= 0.0f || c->n <= 1) return;
    const float max = c->logits[argmax_index(c)];
    const float thr = p >= 1.0f ? max : max + logf(p);
    int32_t n = 0;
    for (int32_t i = 0; i < c->n; i++) {
        if (!(c->logits[i] >= thr)) continue;
        c->ids[n] = c->ids[i];
        c->logits[n] = c->logits[i];
        n++;
    }
    c->n = n;
}

void rf_sample_temp(struct rf_cands *c, float t)
{
    if (c->n <= 0) return;
    if (t <= 0.0f) {
        const int32_t b = argmax_index(c);
        c->ids[0] = c->ids[b];
        c->logits[0] = c->logits[b];
        c->n = 1;
        c->sorted = true;
        return;
    }
    for (int32_t i = 0; i < c->n; i++) c->logits[i] /= t;
}

rf_token rf_sample_greedy(const struct rf_cands *c)
{
    const int32_t b = argmax_index(c);
    return b < 0 ? -1 : c->ids[b];
}

rf_token rf_sample_dist(const struct rf_cands *c, struct rf_rng *rng)
{
    if (c->n <= 0) return -1;
    float max;
    const double sum = softmax_denominator(c, &max);
    const double u = rf_rng_uniform(rng) * sum;
    if (!(sum > 0)) return c->ids[argmax_index(c)];
    double cum = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < c->n; i++) {
        const double w = exp((double)c->logits[i] - max);
        if (w <= 0) continue;
        cum += w;
        last = i;
        if (u < cum) return c->ids[i];
    }
    return c->ids[last]; /* u landed past the rounded total */
}

/* ---- public API ---- */

struct rf_sampler_params rf_sampler_default_params(void)
{
    return (struct rf_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0,
    };
}

static rf_status check_params(const struct rf_sampler_params *p, int32_t n_vocab)
{
    if (n_vocab <= 0) return rf_fail(RF_STATUS_INVALID_ARG, "sampler: n_vocab %d", n_vocab);
    if (!isfinite(p->temperature) || isnan(p->top_p) || isnan(p->min_p))
        return rf_fail(RF_STATUS_INVALID_ARG,
                       "sampler: temperature, top_p and min_p must be numbers");
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "sampler: repeat_penalty %g must be > 0",
                       (double)p->repeat_penalty);
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return rf_fail(RF_STATUS_INVALID_ARG, "sampler: frequency/presence penalty not finite");
    if (p->penalty_last_n < 0)
        return rf_fail(RF_STATUS_INVALID_ARG, "sampler: penalty_last_n %d < 0", p->penalty_last_n);
    return RF_OK;
}

struct rf_sampler *rf_sampler_new(const struct rf_sampler_params *params, int32_t n_vocab)
{
    const struct rf_sampler_params p = params ? *params : rf_sampler_default_params();
    if (check_params(&p, n_vocab) != RF_OK) return NULL;
    struct rf_sampler *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->p = p;
    s->n_vocab = n_vocab;
    if (!rf_cands_alloc(&s->c, n_vocab)) goto nomem;
    const size_t w = p.penalty_last_n > 0 ? (size_t)p.penalty_last_n : 1;
    s->hist = malloc(w * sizeof *s->hist);
    s->scratch = malloc(w * sizeof *s->scratch);
    if (!s->hist || !s->scratch) goto nomem;
    rf_sampler_reset(s);
    return s;
nomem:
    rf_sampler_free(s);
    rf_fail(RF_STATUS_NOMEM, "sampler: out of memory for %d candidates", n_vocab);
    return NULL;
}

void rf_sampler_free(struct rf_sampler *s)
{
    if (!s) return;
    rf_cands_free(&s->c);
    free(s->hist);
    free(s->scratch);
    free(s);
}

void rf_sampler_reset(struct rf_sampler *s)
{
    if (!s) return;
    s->hist_n = 0;
    s->hist_next = 0;
    rf_rng_seed(&s->rng, s->p.seed);
}

void rf_sampler_accept(struct rf_sampler *s, rf_token t)
{
    if (!s || s->p.penalty_last_n <= 0 || t < 0 || t >= s->n_vocab) return;
    s->hist[s->hist_next] = t;
    s->hist_next = (s->hist_next + 1) % s->p.penalty_last_n;
    if (s->hist_n < s->p.penalty_last_n) s->hist_n++;
}

static bool penalties_on(const struct rf_sampler_params *p)
{
    return p->penalty_last_n > 0 && (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                                     p->presence_penalty != 0.0f);
}

rf_token rf_sampler_sample(struct rf_sampler *s, const float *logits)
{
    if (!s || !logits) {
        rf_fail(RF_STATUS_INVALID_ARG, "sampler: NULL %s", s ? "logits" : "sampler");
        return -1;
    }
    const struct rf_sampler_params *p = &s->p;
    struct rf_cands *c = &s->c;
    rf_cands_fill(c, logits, s->n_vocab);
    if (penalties_on(p))
        rf_sample_penalties(c->logits, s->n_vocab, s->hist, s->hist_n, p->repeat_penalty,
                            p->frequency_penalty, p->presence_penalty, s->scratch);
    if (p->temperature <= 0.0f) return rf_sample_greedy(c);
    rf_sample_top_k(c, p->top_k);
    rf_sample_top_p(c, p->top_p);
    rf_sample_min_p(c, p->min_p);
    rf_sample_temp(c, p->temperature);
    return rf_sample_dist(c, &s->rng);
}

bool rf_sampler_device_params(struct rf_sampler *s, struct rf_sample_params *out)
{
    const struct rf_sampler_params *p = &s->p;
    /* Greedy ignores the cutoffs; a draw needs the chain the device has (no min-p). */
    if (penalties_on(p) || (p->temperature > 0.0f && p->min_p > 0.0f)) return false;
    out->temperature = p->temperature;
    out->top_k = p->top_k;
    out->top_p = p->top_p;
    out->u = p->temperature > 0.0f ? (float)rf_rng_uniform(&s->rng) : 0.0f;
    if (out->u >= 1.0f) out->u = 0.99999994f; /* the double rounded up to 1.0f */
    return true;
}
