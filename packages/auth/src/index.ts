export { signUserJwt, verifyUserJwt, type UserClaims } from './jwt.js';
export { signChannelAuth, verifyChannelAuth, hmacHex, constantTimeEqual } from './pusher-signature.js';
export { generateCollectorToken, hashCollectorToken } from './collector-token.js';
export { DEV_JWT_SECRET, productionSecretProblem } from './production-secrets.js';
