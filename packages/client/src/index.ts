export {
  AlarmcastClient,
  compareIds,
  type AlarmcastClientOptions,
  type AlarmEvent,
  type AlarmEventType,
  type Alarm,
  type ConnectionState,
  type ResyncEvent,
} from './client.js';
