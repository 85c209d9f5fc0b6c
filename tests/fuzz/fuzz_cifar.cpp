// libFuzzer target: a CIFAR binary batch (engine/data/cifar.h): CIFAR-10 records when the
// size is a whole number of 3073-byte records, else CIFAR-100's (fine, then coarse labels).
#include "engine/data/cifar.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using visrep::data::CifarFormat;
  static visrep::fuzz::Outcomes outcomes("cifar");
  const std::string path = visrep::fuzz::input_file("data_batch_1.bin", data, size);
  visrep::fuzz::run(outcomes, [&] {
    if (size % 3073 == 0) {
      visrep::data::read_cifar_batch(path, CifarFormat::Cifar10);
    } else {
      visrep::data::read_cifar_batch(path, CifarFormat::Cifar100Fine);
      visrep::data::read_cifar_batch(path, CifarFormat::Cifar100Coarse);
    }
  });
  return 0;
}
