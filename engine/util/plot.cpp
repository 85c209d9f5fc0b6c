#include "engine/util/plot.h"

// stb_easy_font defines every function static; not all of them are used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop
#include <stb/stb_image_write.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/util/atomic_file.h"

namespace visrep::util {
namespace {

using Color = std::array<unsigned char, 3>;

// Distinguishable colours (Tableau 10).
constexpr std::array<Color, 6> kPalette = {
    {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75}}};

// stb_easy_font covers printable ASCII only.
std::string printable(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c < 32 || c > 126) c = '?';
  }
  return out;
}

class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), pixels_(static_cast<size_t>(width * height * 3), 255) {}

  void set(int x, int y, Color color) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::copy(color.begin(), color.end(), pixels_.begin() + (static_cast<size_t>(y) * width_ + x) * 3);
  }

  // Bresenham's line.
  void line(int x0, int y0, int x1, int y1, Color color) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int error = dx + dy;
    while (true) {
      set(x0, y0, color);
      if (x0 == x1 && y0 == y1) break;
      const int twice = 2 * error;
      if (twice >= dy) {
        error += dy;
        x0 += sx;
      }
      if (twice <= dx) {
        error += dx;
        y0 += sy;
      }
    }
  }

  // stb_easy_font emits quads (4 vertices of x, y, z, rgba); fill each axis-aligned quad.
  void text(int x, int y, const std::string& value, Color color, int scale = 1) {
    std::vector<char> buffer(value.size() * 300 + 64);
    std::string copy = printable(value);
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buffer.data(), static_cast<int>(buffer.size()));
    struct Vertex {
      float x, y, z;
      unsigned char rgba[4];
    };
    const auto* vertices = reinterpret_cast<const Vertex*>(buffer.data());
    for (int q = 0; q < quads; ++q) {
      const Vertex* v = vertices + 4 * q;
      const int x0 = static_cast<int>(v[0].x) * scale, y0 = static_cast<int>(v[0].y) * scale;
      const int x1 = static_cast<int>(v[2].x) * scale, y1 = static_cast<int>(v[2].y) * scale;
      for (int yy = std::min(y0, y1); yy < std::max(y0, y1); ++yy)
        for (int xx = std::min(x0, x1); xx < std::max(x0, x1); ++xx) set(x + xx, y + yy, color);
    }
  }

  static int text_width(const std::string& value) {
    std::string copy = printable(value);
    return stb_easy_font_width(copy.data());
  }

  std::string encode_png() const {
    std::string bytes;
    stbi_write_png_to_func(
        [](void* context, void* data, int size) { static_cast<std::string*>(context)->append(static_cast<char*>(data), size); },
        &bytes, width_, height_, 3, pixels_.data(), width_ * 3);
    return bytes;
  }

 private:
  int width_, height_;
  std::vector<unsigned char> pixels_;
};

std::string tick_label(double value) {
  const double magnitude = std::abs(value);
  if (magnitude != 0 && (magnitude < 1e-2 || magnitude >= 1e4)) return fmt::format("{:.2e}", value);
  return fmt::format("{:.3g}", value);
}

}  // namespace

void write_line_plot_png(const std::string& path, const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series, int width, int height) {
  VISREP_CHECK(width >= 200 && height >= 150, "plot '{}': {}x{} pixels is too small", path, width, height);
  double low = std::numeric_limits<double>::infinity(), high = -low;
  size_t longest = 0;
  for (const PlotSeries& s : series) {
    longest = std::max(longest, s.values.size());
    for (double v : s.values) {
      if (!std::isfinite(v)) continue;
      low = std::min(low, v);
      high = std::max(high, v);
    }
  }
  if (!std::isfinite(low)) low = 0, high = 1;
  if (high - low < 1e-12) high = low + 1;

  Canvas canvas(width, height);
  const Color axis = {60, 60, 60}, grid = {225, 225, 225};
  const int left = 70, right = width - 20, top = 40, bottom = height - 50;
  auto x_pixel = [&](double x) {
    return left + static_cast<int>(std::lround(x / std::max<double>(static_cast<double>(longest) - 1, 1) * (right - left)));
  };
  auto y_pixel = [&](double y) { return bottom - static_cast<int>(std::lround((y - low) / (high - low) * (bottom - top))); };

  for (int tick = 0; tick <= 4; ++tick) {
    const double value = low + (high - low) * tick / 4.0;
    const int y = y_pixel(value);
    canvas.line(left, y, right, y, grid);
    const std::string label = tick_label(value);
    canvas.text(left - 8 - Canvas::text_width(label), y - 3, label, axis);
  }
  canvas.line(left, top, left, bottom, axis);
  canvas.line(left, bottom, right, bottom, axis);
  canvas.text(left, 12, title, axis, 2);
  canvas.text(left, bottom + 8, "0", axis);
  const std::string last = std::to_string(longest > 0 ? longest - 1 : 0);
  canvas.text(right - Canvas::text_width(last), bottom + 8, last, axis);
  canvas.text((left + right) / 2 - Canvas::text_width(x_label) / 2, bottom + 24, x_label, axis);
  canvas.text(8, top - 14, y_label, axis);

  for (size_t index = 0; index < series.size(); ++index) {
    const Color color = kPalette[index % kPalette.size()];
    const std::vector<double>& values = series[index].values;
    int previous_x = -1, previous_y = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) continue;
      const int x = x_pixel(static_cast<double>(i)), y = y_pixel(values[i]);
      if (previous_x >= 0) canvas.line(previous_x, previous_y, x, y, color);
      canvas.set(x, y, color);
      previous_x = x;
      previous_y = y;
    }
    const int legend_y = top + 6 + 14 * static_cast<int>(index);
    canvas.line(right - 150, legend_y + 3, right - 130, legend_y + 3, color);
    canvas.text(right - 124, legend_y, series[index].name, color);
  }
  write_file_atomically(path, canvas.encode_png());
}

}  // namespace visrep::util
