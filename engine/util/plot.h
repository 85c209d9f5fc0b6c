// Line plots as PNG (loss and accuracy curves): people would rather look at a curve than
// read a column of numbers. A plain raster with axes, min/max labels and a legend; text is
// drawn with stb_easy_font, the PNG encoded by stb_image_write, the file written atomically.
#pragma once

#include <string>
#include <vector>

namespace visrep::util {

struct PlotSeries {
  std::string name;
  std::vector<double> values;  // y at x = 0, 1, 2, ...
};

// Throws visrep::Error naming the path when the file cannot be written. Non-finite values
// are skipped. Long series are drawn with one point per pixel column (min-max envelope).
void write_line_plot_png(const std::string& path, const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series, int width = 800,
                         int height = 500);

}  // namespace visrep::util
