/*
 * Inverted dropout with masks from a counter-based RNG.
 *
 * Element (r, c) of a layer's (rows, cols) output is kept at training step t
 * iff  u = H(H((r cols + c) ^ k0) + k1) >= p 2^32,  with (k0, k1) derived from
 * (seed, layer, t) by fm_dropout_key and H the "lowbias32" integer hash
 * (C. Wellons, "Prospecting for Hash Functions", 2018).  Kept elements are
 * scaled by 1 / (1 - p), so inference needs no rescaling.  A mask depends on
 * nothing but (seed, layer, step, row, unit): not on threads or scheduling,
 * and the backward pass recomputes it instead of storing it.
 */
#ifndef FASTMLP_DROPOUT_H
#define FASTMLP_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fm_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

typedef struct { uint32_t k0, k1; } fm_dropout_key_t;

static inline fm_dropout_key_t fm_dropout_key(uint64_t seed, uint32_t layer, uint64_t step)
{
    uint32_t h = fm_hash32((uint32_t)seed ^ fm_hash32((uint32_t)(seed >> 32) + 0x9e3779b9U));
    h = fm_hash32(h ^ fm_hash32(layer + 0x85ebca6bU));
    h = fm_hash32(h ^ (uint32_t)step);
    h = fm_hash32(h ^ (uint32_t)(step >> 32));
    fm_dropout_key_t key = {h, fm_hash32(h + 0x632be5abU)};
    return key;
}

/* keep iff the element's draw reaches this (p 2^32, saturating) */
static inline uint32_t fm_dropout_threshold(double p)
{
    double t = p * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffU : (uint32_t)t;
}

#endif /* FASTMLP_DROPOUT_H */
