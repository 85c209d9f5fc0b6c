// NumPy's .npy array files, as specified in numpy/lib/format.py ("NEP 1"):
//
//   "\x93NUMPY"  major  minor  header_length  header  data
//
// header_length is a little-endian uint16 in version 1.0 and a uint32 in 2.0 and 3.0; the
// header is a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and ended by '\n'; the data follows, row-major unless fortran_order.
//
// Reading accepts versions 1.0, 2.0 and 3.0; the descrs '<f4' '<f8' '<i4' '<i8' '|u1' (also
// '<u1'), '|b1' (loaded as uint8 0/1) and '<f2' (widened to float32, visrep has no float16);
// big-endian ('>') variants are byte-swapped, and Fortran-order arrays come back row-major.
// Writing produces version 1.0 with the data starting at a multiple of 64 bytes, as NumPy
// does, so np.load (and np.load(mmap_mode='r')) reads it directly.
#pragma once

#include <string>
#include <string_view>

#include "engine/tensor.h"

namespace visrep::io {

// Writes `tensor` (any device, any layout; it is copied to a contiguous CPU tensor first)
// atomically (util::write_file_atomically). bfloat16 has no .npy type: convert it with
// tensor.to(kFloat32) first, which is exact.
void save_npy(const std::string& path, const Tensor& tensor);

// A contiguous CPU tensor holding the array. Throws visrep::Error naming the file and the
// problem for a missing file, a bad magic string, an unsupported version or descr, a
// malformed header or truncated data.
Tensor load_npy(const std::string& path);

// The same two for a .npy file held in memory: the members of an .npz archive
// (engine/io/npz.h). `context` opens every error message, e.g.
// "load_npz: 'weights.npz': member 'w'".
Tensor parse_npy(std::string_view bytes, const std::string& context);
std::string npy_bytes(const Tensor& tensor, const std::string& context);

}  // namespace visrep::io
