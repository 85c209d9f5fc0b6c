#include "kernels/cuda/library_status.h"

#include <stdexcept>
#include <string>

namespace visrep::kernels::cuda {

void check_cublas(cublasStatus_t status, const char* what, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

void check_cudnn(cudnnStatus_t status, const char* what, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  std::string message = std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                        cudnnGetErrorString(status);
  // cuDNN 9 keeps a longer explanation of the last failure on this thread.
  char details[512] = {};
  cudnnGetLastErrorString(details, sizeof(details));
  if (details[0] != '\0') message += std::string(" (") + details + ")";
  throw std::runtime_error(message);
}

}  // namespace visrep::kernels::cuda
