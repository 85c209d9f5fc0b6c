// stb_image, stb_image_resize and stb_image_write compiled into the fuzz build from Debian's
// headers (the version libstb holds), so that the sanitizers and libFuzzer's coverage see
// inside the decoder. The main build links Debian's libstb instead.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>
