// Everything a model or a recipe needs from the engine's tensor ops, in one include.
#pragma once

#include "engine/autograd.h"
#include "engine/ops/bit_normalization.h"
#include "engine/ops/contrastive.h"
#include "engine/ops/convolution.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/indexing.h"
#include "engine/ops/linear_algebra.h"
#include "engine/ops/loss.h"
#include "engine/ops/normalization.h"
#include "engine/ops/reduction.h"
#include "engine/random.h"
#include "engine/tensor.h"
