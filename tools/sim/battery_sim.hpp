// The drill's battery: its own physics, independent of daemon/model. Capacity
// at a discharge rate comes from a generic published-style table (fraction of
// the rated capacity delivered vs hours to 1.80 V/cell, log-log interpolated),
// corrected for end voltage, temperature and state of health; a constant-power
// load draws I = P / V as the voltage sags. The controller shows V, I, SoC
// (coulomb-counted on the rated capacity, as real controllers do) and temperature.
#pragma once

#include "core/site.hpp"

namespace sitepower::sim {

class BatterySim {
 public:
  BatterySim(const core::BatterySpec& spec, double load_w);
  // A battery part-way through a discharge (a replay's continuation): `drawn_ah`
  // taken out since full (clamped to 0..capacity x strings x soh), which this
  // model turns into its used fraction at this load (rate and temperature),
  // as a constant-load discharge from full would have; `empty`: it has
  // already reached end voltage (the load is disconnected).
  static BatterySim Resume(const core::BatterySpec& spec, double load_w, double drawn_ah,
                           bool empty);

  // Advances by dt_s seconds. `carried`: mains or a generator carries the load
  // (the battery recharges); otherwise it discharges into the load.
  void Step(double dt_s, bool carried);

  double voltage_v() const;
  double current_a() const { return current_a_; }  // + = discharging
  double soc_pct() const;
  double temp_c() const { return spec_.temp_c; }
  bool empty() const { return used_ >= 1.0; }  // reached end voltage: load disconnected

  // Minutes from a full state (spec.soc) to end voltage at this load.
  static double TrueRuntimeMin(const core::BatterySpec& spec, double load_w);
  // Minutes from this state to end voltage at its load had nobody come.
  double MinutesToEmpty() const;

 private:
  double CapacityAtCurrentAh(double string_current_a) const;
  double CellVoltage(double used_fraction, double string_current_a) const;

  core::BatterySpec spec_;
  double load_w_;
  double used_ = 0;      // fraction of the capacity available at the present rate that is spent
  double ah_drawn_ = 0;  // since full, for the coulomb-counted SoC
  double current_a_ = 0;
};

}  // namespace sitepower::sim
