export {
  AlarmcastClient,
  NO_POSITION,
  compareIds,
  type AlarmcastClientOptions,
  type AlarmEvent,
  type AlarmEventType,
  type Alarm,
  type ConnectionState,
  type ResyncEvent,
} from './client.js';
