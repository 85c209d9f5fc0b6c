// Everything a model or a recipe needs from the engine's tensor ops, in one include.
#pragma once

#include "engine/autograd.h"
#include "engine/ops/batch_norm.h"
#include "engine/ops/collectives.h"
#include "engine/ops/contrastive.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/group_norm.h"
#include "engine/ops/indexing.h"
#include "engine/ops/linear_algebra.h"
#include "engine/ops/pool.h"
#include "engine/ops/reduction.h"
#include "engine/ops/weight_standardization.h"
#include "engine/random.h"
#include "engine/tensor.h"
