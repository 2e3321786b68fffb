import winston from 'winston';

/**
 * JSON lines on stdout for journald; a readable line on a terminal. Every line of a run carries
 * its backup id, node and component through child loggers.
 */
export function createLogger(service: string, level = process.env.LSBACKUP_LOG_LEVEL ?? 'info'): winston.Logger {
  const readable = winston.format.printf(({ level: lvl, message, timestamp, service: svc, ...rest }) => {
    const ctx = ['backupId', 'node', 'component'].map((k) => rest[k]).filter(Boolean).join(' ');
    return `${timestamp} ${lvl} ${svc}${ctx ? ` [${ctx}]` : ''}: ${message}`;
  });
  return winston.createLogger({
    level,
    defaultMeta: { service },
    format: winston.format.combine(winston.format.timestamp(), process.stdout.isTTY ? readable : winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
