#ifndef RF_TESTS_TEST_RNG_H
#define RF_TESTS_TEST_RNG_H
/* The tests' random numbers: xorshift64*, one stream per test file (rng_state may be
 * reseeded), and normal deviates by Box-Muller. */
#include <math.h>
#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static inline uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static inline double rng_unit(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0; }

static inline int rng_int(int lo, int hi)
{
    return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1));
}

static inline float rng_normal(void)
{
    const double u = rng_unit() + 1e-300, v = rng_unit();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

#endif
