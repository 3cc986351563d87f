// libvorbisfile for EarTagAudio's Ogg/Vorbis header check. The header's static OV_CALLBACKS_* tables (stdio) are
// left out: EarTag passes its own callbacks over a file descriptor or memory.
#define OV_EXCLUDE_STATIC_CALLBACKS
#include <vorbis/vorbisfile.h>
