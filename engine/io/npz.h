// NumPy's .npz archives, as np.savez / np.savez_compressed write them and np.load reads
// them (numpy/lib/_npyio_impl.py): a zip file whose members are .npy files (engine/io/npy.h)
// named "<key>.npy", stored or deflated. The official BiT weights are such archives, with
// keys like "resnet/block1/unit01/a/standardized_conv2d/kernel".
//
// The zip container is read and written with libzip; the members with the .npy code.
#pragma once

#include <string>

#include "engine/io/safetensors.h"  // TensorMap

namespace visrep::io {

// Every array of the archive, keyed by member name without the ".npy" suffix, as
// contiguous CPU tensors. The whole central directory is checked before any member is
// unpacked: only stored and deflated members (what np.savez and np.savez_compressed write),
// unpacked sizes that the packed bytes can produce (deflate: 1032:1), packed sizes that fit
// in the file together (members never share bytes), distinct names. Throws visrep::Error
// naming the file (and the member, where one is at fault) for those, a missing file, a file
// that is not a zip archive or is truncated, a corrupt size field, a member whose data is
// corrupt (CRC mismatch, bad deflate stream, wrong length), and a member that is not a .npy
// file or holds an invalid one.
TensorMap load_npz(const std::string& path);

// Writes every tensor as a stored (uncompressed) "<key>.npy" member, as np.savez does,
// atomically (util::write_file_atomically): np.load reads the result. Tensors may live on
// any device and in any layout; bfloat16 must be converted first (see save_npy).
void save_npz(const std::string& path, const TensorMap& tensors);

}  // namespace visrep::io
