// End-to-end: the visrep-augment-preview binary as a user runs it: a grid from an image
// folder written here (its size follows from the flags), the seeded views are reproducible,
// and bad flags, missing folders and undecodable files end with a message naming them.
#include <catch2/catch.hpp>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/support/apps.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

#ifndef VISREP_AUGMENT_PREVIEW_BINARY
#error "tests/CMakeLists.txt passes the path of visrep-augment-preview as VISREP_AUGMENT_PREVIEW_BINARY"
#endif

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// Runs the app with `arguments` (shell words) in `folder` (empty: the test's own).
AppResult run_preview(const std::string& arguments, const std::string& folder = "") {
  return run_app(VISREP_AUGMENT_PREVIEW_BINARY, arguments, folder);
}

// root/<class>/<i>.png: `per_class` random 40x30 RGB images in each of two classes.
void write_image_folder(const std::filesystem::path& root, int per_class) {
  Generator generator = generator_for("augment preview app folder");
  for (const char* name : {"circle", "square"}) {
    std::filesystem::create_directories(root / name);
    for (int i = 0; i < per_class; ++i) {
      const std::vector<uint8_t> pixels = randint(0, 256, {30 * 40 * 3}, kUInt8, generator).to_vector<uint8_t>();
      const std::string path = (root / name / (std::to_string(i) + ".png")).string();
      REQUIRE(stbi_write_png(path.c_str(), 40, 30, 3, pixels.data(), 40 * 3) != 0);
    }
  }
}

}  // namespace

TEST_CASE("augment preview app: a grid from an image folder", "[e2e]") {
  TemporaryDirectory directory;
  const auto root = directory.path() / "photos";
  write_image_folder(root, 3);
  const std::string output = directory.file("grid.png");
  const std::string flags = "--data '" + root.string() + "' --load-size 32 --size 24 --images 2 --views 3 --seed 5 ";
  const AppResult run = run_preview(flags + "-o '" + output + "'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  REQUIRE_THAT(run.output, Contains("wrote") && Contains("2 images x 3 views") && Contains("simclr 24x24"));
  // 24-px tiles enlarged 7x to 168 (>= 160 px), 4 columns with 10-px margins.
  int width = 0, height = 0, channels = 0;
  stbi_uc* pixels = stbi_load(output.c_str(), &width, &height, &channels, 3);
  REQUIRE(pixels != nullptr);
  stbi_image_free(pixels);
  CHECK(width == 10 + 4 * (168 + 10));
  CHECK(height > 2 * 168);
  // The same flags draw the same views: the same file, byte for byte.
  const std::string again = directory.file("again.png");
  REQUIRE(run_preview(flags + "-o '" + again + "'").exit_code == 0);
  CHECK(read_bytes(again) == read_bytes(output));
  CHECK(run_preview("--data '" + root.string() + "' --load-size 32 --size 24 --images 2 --views 3 --seed 6 -o '" + again +
                    "'").exit_code == 0);
  CHECK(read_bytes(again) != read_bytes(output));
  // The default file name carries the dataset, preset, size, views and seed.
  const AppResult named =
      run_preview("--data '" + root.string() + "' --load-size 32 --preset eval --views 1", directory.path().string());
  REQUIRE_THAT(named.output, Contains("wrote augment-photos-eval-32px-1views-seed0.png"));
  CHECK(std::filesystem::exists(directory.file("augment-photos-eval-32px-1views-seed0.png")));
}

TEST_CASE("augment preview app: bad flags and bad data", "[e2e]") {
  TemporaryDirectory directory;
  const auto root = directory.path() / "photos";
  write_image_folder(root, 1);
  const std::string data = "--data '" + root.string() + "' -o '" + directory.file("out.png") + "' ";

  AppResult run = run_preview(data + "--preset byol");
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, Contains("--preset") && Contains("byol"));
  run = run_preview(data + "--views 0");
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, Contains("--views"));
  run = run_preview(data + "--device gpu");
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.output, Contains("--device") && Contains("gpu"));
  run = run_preview("--data '" + directory.file("nowhere") + "'");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Contains("nowhere") && Contains("does not exist"));
  run = run_preview("--data '" + root.string() + "' -o '" + directory.file("no/such/folder/out.png") + "'");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Contains("no/such/folder/out.png"));

  // A file that is no image: named, or skipped with a warning when asked.
  write_bytes((root / "circle" / "notes.png").string(), "not a picture");
  run = run_preview(data);
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Contains("notes.png") && Contains("not a readable image"));
  run = run_preview(data + "--skip-bad-files");
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.output, Contains("warning") && Contains("notes.png"));
  CHECK_FALSE(std::filesystem::exists(directory.file("no/such/folder/out.png")));
}
