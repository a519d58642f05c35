#include "common/clock.h"

namespace parc::common {

Clock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace parc::common
