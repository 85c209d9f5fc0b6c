// The utilities every training loop uses: durations, metrics as JSON lines, PNG line plots
// (decoded back with stb_image) and the progress bar as it appears in a log file.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <stb/stb_image.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/util/metrics.h"
#include "engine/util/plot.h"
#include "engine/util/progress.h"
#include "tests/support/files.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Fresh random doubles, uniform in [low, high).
std::vector<double> random_values(int64_t count, double low, double high, Generator& generator) {
  return random_uniform({count}, low, high, generator).to_vector<double>();
}

// A decoded PNG: 8-bit RGB pixels, row-major.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<unsigned char> pixels;

  const unsigned char* at(int x, int y) const { return &pixels[(static_cast<size_t>(y) * width + x) * 3]; }
  // The plot draws its axes, grid and labels in greys; series are in colour.
  bool is_coloured(int x, int y) const {
    const unsigned char* p = at(x, y);
    return p[0] != p[1] || p[1] != p[2];
  }
};

Image decode_png(const std::string& path) {
  Image image;
  unsigned char* data = stbi_load(path.c_str(), &image.width, &image.height, &image.channels, 3);
  INFO("stb_image: " << (data ? "ok" : stbi_failure_reason()));
  REQUIRE(data != nullptr);
  image.pixels.assign(data, data + static_cast<size_t>(image.width) * image.height * 3);
  stbi_image_free(data);
  return image;
}

// Redirects the process's stderr (file descriptor 2, which ProgressBar writes to) into a
// file for the lifetime of the object, and restores it afterwards, also when a check fails.
class StderrCapture {
 public:
  explicit StderrCapture(const std::string& path) : path_(path) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    REQUIRE(saved_ >= 0);
    const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(file >= 0);
    REQUIRE(::dup2(file, STDERR_FILENO) == STDERR_FILENO);
    ::close(file);
  }
  ~StderrCapture() { restore(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // Restores stderr and returns what was written to it.
  std::vector<std::string> finish() {
    restore();
    return read_lines(path_);
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  std::string path_;
  int saved_ = -1;
};

int64_t count_containing(const std::vector<std::string>& lines, const std::string& text) {
  int64_t count = 0;
  for (const std::string& line : lines) count += line.find(text) != std::string::npos;
  return count;
}

}  // namespace

// ---- format_duration ------------------------------------------------------------------------------

TEST_CASE("format_duration", "[unit]") {
  CHECK(util::format_duration(0) == "0:00");
  CHECK(util::format_duration(7.4) == "0:07");
  CHECK(util::format_duration(59.6) == "1:00");  // rounded to the nearest second
  CHECK(util::format_duration(61) == "1:01");
  CHECK(util::format_duration(3599) == "59:59");
  CHECK(util::format_duration(3600) == "1:00:00");
  CHECK(util::format_duration(3723) == "1:02:03");
  CHECK(util::format_duration(100 * 3600 + 5) == "100:00:05");
  // An ETA that cannot be known yet prints as "?", not as garbage.
  CHECK(util::format_duration(-1) == "?");
  CHECK(util::format_duration(std::numeric_limits<double>::quiet_NaN()) == "?");
  CHECK(util::format_duration(std::numeric_limits<double>::infinity()) == "?");
}

// ---- MetricsWriter ----------------------------------------------------------------------------------

TEST_CASE("metrics writer truncates or appends", "[unit]") {
  Generator generator = generator_for("metrics writer truncates or appends");
  const std::vector<double> losses = random_values(3, 0.0, 5.0, generator);
  TemporaryDirectory directory;
  const std::string path = directory.file("metrics.jsonl");
  write_bytes(path, "stale line from an older run\n");
  {
    util::MetricsWriter metrics(path, false);  // a fresh run: the old contents go
    REQUIRE(metrics.is_open());
    REQUIRE(metrics.path() == path);
    metrics.write({{"kind", "step"}, {"step", 0}, {"loss", losses[0]}});
    // Quotes and a newline inside a string must not break the one-record-per-line format.
    metrics.write({{"kind", "note"}, {"text", "a \"quoted\"\nsecond line"}});
  }
  {
    util::MetricsWriter metrics(path, true);  // a resumed run: keep what is there
    metrics.write({{"kind", "step"}, {"step", 1}, {"loss", losses[1]}});
  }
  const std::vector<std::string> lines = read_lines(path);
  REQUIRE(lines.size() == 3);
  std::vector<nlohmann::json> records;
  for (const std::string& line : lines) {
    INFO(line);
    REQUIRE_NOTHROW(records.push_back(nlohmann::json::parse(line)));
    REQUIRE(records.back().is_object());
  }
  CHECK(records[0]["step"] == 0);
  CHECK(records[0]["loss"].get<double>() == losses[0]);  // doubles survive the round trip exactly
  CHECK(records[1]["text"] == "a \"quoted\"\nsecond line");
  CHECK(records[2]["step"] == 1);
  CHECK(records[2]["loss"].get<double>() == losses[1]);

  util::MetricsWriter fresh(path, false);
  fresh.write({{"kind", "step"}, {"step", 0}, {"loss", losses[2]}});
  REQUIRE(read_lines(path).size() == 1);
}

TEST_CASE("metrics writer bad path", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("no/such/folder/metrics.jsonl");
  REQUIRE_THROWS_AS(util::MetricsWriter(path, false), Error);
  REQUIRE_THROWS_WITH(util::MetricsWriter(path, true), Contains(path));
  util::MetricsWriter closed;
  REQUIRE_FALSE(closed.is_open());
  REQUIRE_THROWS_AS(closed.write({{"step", 0}}), Error);
  REQUIRE(directory.entries().empty());
}

// ---- write_line_plot_png ------------------------------------------------------------------------------

TEST_CASE("line plot decodes with the requested size", "[unit]") {
  // A rising series and a noisy one; 640x360 is not the default size.
  Generator generator = generator_for("line plot decodes with the requested size");
  std::vector<double> rising(60);
  for (size_t i = 0; i < rising.size(); ++i) rising[i] = 0.5 + static_cast<double>(i) * 0.1;
  TemporaryDirectory directory;
  const std::string path = directory.file("loss.png");
  util::write_line_plot_png(path, "loss", "step", "value",
                            {{"rising", rising}, {"noise", random_values(60, 0.0, 6.0, generator)}}, 640, 360);
  REQUIRE(directory.entries() == std::vector<std::string>{"loss.png"});
  const Image image = decode_png(path);
  REQUIRE(image.width == 640);
  REQUIRE(image.height == 360);
  REQUIRE(image.channels == 3);

  // Not blank: the curves cross the plot, so coloured pixels show up in most columns.
  std::set<int> coloured_columns;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      if (image.is_coloured(x, y)) coloured_columns.insert(x);
  CHECK(coloured_columns.size() > static_cast<size_t>(image.width) / 2);

  // y grows upwards: the rising series (the first colour) sits lower on the left than in
  // the middle. The legend is at the top right, away from both regions.
  auto mean_row_of_first_colour = [&](int x_begin, int x_end) {
    double rows = 0, count = 0;
    for (int y = 0; y < image.height; ++y)
      for (int x = x_begin; x < x_end; ++x) {
        if (!image.is_coloured(x, y)) continue;
        const unsigned char* p = image.at(x, y);
        // The first series is blue-ish (blue the largest channel), the second orange.
        if (p[2] <= p[0]) continue;
        rows += y;
        ++count;
      }
    REQUIRE(count > 0);
    return rows / count;
  };
  CHECK(mean_row_of_first_colour(70, 140) > mean_row_of_first_colour(280, 360) + 40);
}

TEST_CASE("line plot skips NaN and handles empty series", "[unit]") {
  Generator generator = generator_for("line plot skips NaN and handles empty series");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<double> gappy = random_values(40, -2.0, 2.0, generator);
  for (size_t i = 0; i < gappy.size(); i += 3) gappy[i] = nan;
  gappy[1] = inf;
  gappy[2] = -inf;
  TemporaryDirectory directory;
  const std::vector<std::pair<std::string, std::vector<util::PlotSeries>>> cases = {
      {"gappy.png", {{"loss", gappy}}},
      {"all_nan.png", {{"loss", {nan, nan, inf}}}},
      {"empty_series.png", {{"loss", {}}}},
      {"no_series.png", {}},
      {"single_point.png", {{"loss", {3.0}}}},
  };
  for (const auto& [name, series] : cases) {
    INFO(name);
    const std::string path = directory.file(name);
    REQUIRE_NOTHROW(util::write_line_plot_png(path, "title", "x", "y", series, 300, 200));
    const Image image = decode_png(path);
    CHECK(image.width == 300);
    CHECK(image.height == 200);
  }
}

TEST_CASE("line plot bad path and size", "[unit]") {
  TemporaryDirectory directory;
  const std::string path = directory.file("missing/plot.png");
  REQUIRE_THROWS_AS(util::write_line_plot_png(path, "t", "x", "y", {{"loss", {1.0, 2.0}}}), Error);
  REQUIRE_THROWS_WITH(util::write_line_plot_png(path, "t", "x", "y", {{"loss", {1.0, 2.0}}}), Contains(path));
  const std::string small = directory.file("small.png");
  REQUIRE_THROWS_WITH(util::write_line_plot_png(small, "t", "x", "y", {{"loss", {1.0}}}, 100, 80),
                      Contains(small) && Contains("100x80"));
  REQUIRE(directory.entries().empty());  // no file, no temporary left behind
}

// ---- ProgressBar ----------------------------------------------------------------------------------------

TEST_CASE("progress bar in a log file", "[unit]") {
  // With stderr redirected to a file the bar is not interactive: it prints whole lines at
  // most every log_interval_seconds and always the final one. A 1000 s interval leaves only
  // the final line.
  Generator generator = generator_for("progress bar in a log file");
  const std::vector<double> losses = random_values(4, 0.1, 0.9, generator);
  TemporaryDirectory directory;
  StderrCapture capture(directory.file("stderr.log"));
  util::ProgressBar bar("epoch 3/7", 4, 1000.0);
  for (int64_t step = 1; step <= 4; ++step) {
    bar.update(step, 32, {{"loss", losses[static_cast<size_t>(step - 1)]}, {"lr", 0.05}});
  }
  bar.finish();
  const std::vector<std::string> lines = capture.finish();
  INFO("captured:\n" << [&] {
    std::ostringstream text;
    for (const std::string& line : lines) text << line << '\n';
    return text.str();
  }());
  REQUIRE(lines.size() == 1);  // finish() does not repeat the line update() printed at 100%
  const std::string& line = lines.back();
  CHECK_THAT(line, Contains("epoch 3/7") && Contains("100%") && Contains("4/4") && Contains("img/s"));
  CHECK_THAT(line, Contains(fmt::format("loss {:.4f}", losses[3])) && Contains("lr 0.0500"));
  CHECK(line.find('\r') == std::string::npos);  // no terminal redraws in a log
  CHECK(line.find('\033') == std::string::npos);
}

TEST_CASE("progress bar finish prints once", "[unit]") {
  TemporaryDirectory directory;
  SECTION("stopped early") {
    // A loop that ends before the last step: finish() prints the final state once.
    StderrCapture capture(directory.file("early.log"));
    util::ProgressBar bar("eval", 10, 1000.0);
    bar.update(3, 8, {{"accuracy", 0.75}});
    bar.finish();
    const std::vector<std::string> lines = capture.finish();
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Contains("eval") && Contains("100%") && Contains("accuracy 0.7500") && Contains("img/s"));
  }
  SECTION("finish with the values update printed") {
    StderrCapture capture(directory.file("same.log"));
    util::ProgressBar bar("train", 2, 1000.0);
    bar.update(1, 8, {{"loss", 0.5}});
    bar.update(2, 8, {{"loss", 0.25}});
    bar.finish({{"loss", 0.25}});
    const std::vector<std::string> lines = capture.finish();
    REQUIRE(lines.size() == 1);
    CHECK(count_containing(lines, "100%") == 1);
  }
  SECTION("finish with new values") {
    // New numbers at the end (an epoch's accuracy) are worth a second line.
    StderrCapture capture(directory.file("new.log"));
    util::ProgressBar bar("train", 2, 1000.0);
    bar.update(2, 8, {{"loss", 0.25}});
    bar.finish({{"loss", 0.25}, {"accuracy", 0.5}});
    const std::vector<std::string> lines = capture.finish();
    REQUIRE(lines.size() == 2);
    CHECK_THAT(lines[1], Contains("accuracy 0.5000") && Contains("100%"));
  }
}
