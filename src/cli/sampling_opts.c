/* The sampling options that run and chat share: their names, help text and parsing. */
#include <stdint.h>

#include "cli/cli.h"

/* Float options: true when taken. */
static bool float_opt(int c, const char *v, struct rf_sampler_params *sp)
{
    float x;
    if (!cli_parse_float(v, &x)) return false;
    switch (c) {
    case CLI_OPT_TEMP: sp->temperature = x; return true;
    case CLI_OPT_TOP_P: sp->top_p = x; return true;
    case CLI_OPT_MIN_P: sp->min_p = x; return true;
    case CLI_OPT_REPEAT_PENALTY:
        if (x <= 0) return false;
        sp->repeat_penalty = x;
        return true;
    case CLI_OPT_FREQ: sp->frequency_penalty = x; return true;
    case CLI_OPT_PRESENCE: sp->presence_penalty = x; return true;
    default: return false;
    }
}

void cli_sampling_init(struct cli_sampling *s)
{
    s->sp = rf_sampler_default_params();
    s->repeat_last_n = 64;
    s->seed_given = false;
}

int cli_sampling_option(int c, const char *v, struct cli_sampling *s)
{
    if (c < CLI_OPT_TEMP || c >= CLI_OPT_SAMPLING_END) return 0;
    switch (c) {
    case CLI_OPT_TOP_K: return cli_parse_i32(v, 0, INT32_MAX, &s->sp.top_k) ? 1 : -1;
    case CLI_OPT_REPEAT_LAST_N: return cli_parse_i32(v, -1, INT32_MAX, &s->repeat_last_n) ? 1 : -1;
    case CLI_OPT_SEED:
        s->seed_given = true;
        return cli_parse_u64(v, &s->sp.seed) ? 1 : -1;
    default: return float_opt(c, v, &s->sp) ? 1 : -1;
    }
}
