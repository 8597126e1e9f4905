// The front end as a library: the JS packet API, and the pieces xsw-front is
// made of for tools and tests.
export { FrontDevice } from './api';
export type { FrontDeviceOptions } from './api';
export { FrontError } from './errors';
export { buildTestFrame, checkTestFrame, crc32, TEST_ETHERTYPE, TEST_FRAME_MIN_LEN } from './frame';
export type { FrameCheck } from './frame';
export { deriveMac, formatMac, parseDeviceMac, parseEthPeer } from './mac';
export { FrontSession } from './session';
export type { DeviceStats } from '../native/front';
